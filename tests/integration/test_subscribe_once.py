"""libdynostore's dyno_client_subscribe delivers each event of a catalog once.

It used to subscribe to both dyno/v1/events/<catalog> and dyno/v1/events/<catalog>/#. In MQTT
a trailing '#' also matches its parent level, so every event of the catalog itself matched
two subscriptions, and mosquitto delivers a message once per matching subscription: each
subscriber (the CLI, the mirror, an edge node's program) got every event twice.

`dynostore subscribe` (which prints one line per event the library hands it) follows a catalog
while four objects are put, three into the catalog and one into a sub-catalog. The broker
sends the copies of one message back to back, so once every key has been seen, a second copy
of all but the last one would have been read too: no waiting for something not to happen.
"""

import json
import os
import queue
import subprocess
import threading
import unittest

from fabric import KiB, FabricCase, write_random_file

CAT = "admin/once"
WAIT = 120.0  # liveness bound, not a performance assertion


class SubscribeOnce(FabricCase):

    def test_each_event_once(self):
        f = self.fab
        f.cli("catalog", "create", CAT)
        f.cli("catalog", "create", CAT + "/sub")
        b = f.fabric["broker"]
        argv = [os.path.join(f.bin, "dynostore"), "--gateway", f.gateway, "--token-file",
                f.admin_token_file, "subscribe", CAT, "--broker", "mqtt://%s:%d" % (b["host"], b["port"])]
        sub = subprocess.Popen(argv, cwd=f.work, env=f.env(), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines, errs = queue.Queue(), queue.Queue()
        threading.Thread(target=lambda: [lines.put(ln) for ln in sub.stdout], daemon=True).start()
        threading.Thread(target=lambda: [errs.put(ln) for ln in sub.stderr], daemon=True).start()
        try:
            while "subscribed to" not in errs.get(timeout=WAIT):
                pass
            keys = []
            for i, cat in enumerate((CAT, CAT, CAT + "/sub", CAT)):
                p = os.path.join(f.work, "once-%d.bin" % i)
                write_random_file(p, 2 * KiB, seed=40 + i)
                keys.append(f.put_file(p, cat)["key"])
            seen = []
            while not set(keys) <= set(seen):
                ev = json.loads(lines.get(timeout=WAIT))
                if ev.get("type") == "object.created":
                    seen.append(ev["object"]["key"])
            # The copies of one publish arrive back to back, so by the time every key has
            # been seen, a second copy of any but the last one seen would have been read.
            self.assertEqual(sorted(seen), sorted(keys),
                             "events of the catalog and of its sub-catalog, once each")
        finally:
            sub.terminate()
            try:
                sub.wait(timeout=30)
            except subprocess.TimeoutExpired:
                sub.kill()
                sub.wait()


if __name__ == "__main__":
    unittest.main()
