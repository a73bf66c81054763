"""Issue 2, acceptance 8: placement balances utilization across containers of unequal
capacity (UF = (used + S/k) / capacity, SPEC §6).

Why the puts use resilience 2,1: with the default k=3, m=2 every erasure-coded object needs
n = 5 distinct containers, so on a 5-container fabric every object puts one equal fragment on
every container and the used bytes are equal, not the utilizations; placement has no choice to
make. With k=2, m=1 (n = 3 of 5; small objects are m + 1 = 2 replicas) it must choose, and the
largest container needs 800/2600 = 31% of all stored bytes, below the 1/3 one object can give it.
"""

import random
import signal
import sys
import unittest

from fabric import KiB, MiB, FabricCase

CAT = "admin/placement"
CAPACITIES = {"c1": "300M", "c2": "400M", "c3": "500M", "c4": "600M", "c5": "800M"}


def parse_size(s):
    mult = {"K": KiB, "M": MiB, "G": 1024 * MiB}
    return int(s[:-1]) * mult[s[-1]] if s[-1] in mult else int(s)


class Placement(FabricCase):

    def test_utilization_balanced_with_unequal_capacities(self):
        f = self.fab
        ids = f.container_ids()
        self.assertEqual(ids, sorted(CAPACITIES), "container ids: %r" % ids)
        for cid, cap in CAPACITIES.items():
            f.kill("container-" + cid, signal.SIGTERM)
            f.restart("container-" + cid, ["--capacity", cap])
        want = {cid: parse_size(cap) for cid, cap in CAPACITIES.items()}

        def restarted(cs):
            got = {c["id"]: c for c in cs}
            return all(cid in got and got[cid].get("state") == "online"
                       and int(got[cid].get("capacity", 0)) == want[cid] for cid in want)
        f.wait_containers(restarted, timeout=90, what="5 containers online with new capacities")

        f.create_catalog(CAT)
        rnd = random.Random(8)
        for i in range(200):
            size = rnd.randint(4 * KiB, 2 * MiB)
            r = f.put_bytes(CAT, rnd.randbytes(size), name="p%03d" % i,
                            headers={"X-Dyno-Resilience": "2,1"})
            self.assertEqual(r.status, 201, "put %d (%d B): %d %r" % (i, size, r.status, r.body))
            if i == 0:
                d = r.json()
                self.assertEqual((d.get("k"), d.get("m")), (2, 1),
                                 "X-Dyno-Resilience ignored: %r" % d)

        cs = {c["id"]: c for c in f.containers_info()}
        util = {}
        for cid in want:
            c = cs[cid]
            self.assertEqual(int(c["capacity"]), want[cid])
            used = int(c["used"])
            self.assertGreater(used, 0, "container %s got nothing: %r" % (cid, c))
            util[cid] = used / want[cid]
            if "utilization" in c:  # the reported factor agrees with used / capacity
                self.assertAlmostEqual(float(c["utilization"]), util[cid], delta=0.005,
                                       msg="utilization of %s: %r" % (cid, c))
        mean = sum(util.values()) / len(util)
        # "within 10% of the mean": |u_i - mean| <= 0.10 * mean, for every container i
        report = ", ".join("%s=%.4f" % (cid, u) for cid, u in sorted(util.items()))
        sys.stderr.write("[utilization %s, mean %.4f] " % (report, mean))
        for cid, u in util.items():
            self.assertLessEqual(abs(u - mean), 0.10 * mean,
                                 "utilization of %s is %.4f, mean %.4f (%s)"
                                 % (cid, u, mean, report))


if __name__ == "__main__":
    unittest.main()
