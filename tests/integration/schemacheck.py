"""A small JSON Schema validator for the subset the files of schemas/ use (stdlib only).

Keywords: type (one or a list), required, properties, additionalProperties (bool or a
schema), pattern (a Python regex, searched as JSON Schema says), enum, const, minimum,
maximum, minLength, maxLength (in code points), items, $ref to "#" or "#/..." inside the same
document, oneOf, not, if/then/else. Annotations ($schema, $id, title, description, $comment, $defs,
definitions, examples, default, format) are ignored. Any other keyword is an error of the
schema (SchemaError), so a schema never passes because a keyword was silently skipped.

    errors = validate(instance, schema)      # [] when valid, else ["$.object.key: ...", ...]
    check_event(topic, payload_bytes)        # against schemas/event-<type>.schema.json

Its own tests: test_schemacheck.py.
"""

import json
import os
import re

ANNOTATIONS = {"$schema", "$id", "title", "description", "$comment", "$defs", "definitions",
               "examples", "default", "format"}
KEYWORDS = {"type", "required", "properties", "additionalProperties", "pattern", "enum", "const",
            "minimum", "maximum", "minLength", "maxLength", "items", "$ref", "oneOf", "if", "then",
            "else", "not"}
EVENTS_PREFIX = "dyno/v1/events/"


class SchemaError(ValueError):
    """The schema itself uses something this validator does not support, or is malformed."""


def _is_type(v, t):
    if t == "object":
        return isinstance(v, dict)
    if t == "array":
        return isinstance(v, list)
    if t == "string":
        return isinstance(v, str)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "null":
        return v is None
    if t == "integer":
        if isinstance(v, bool):
            return False
        return isinstance(v, int) or (isinstance(v, float) and v.is_integer())
    if t == "number":
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    raise SchemaError("unknown type %r" % (t,))


def _equal(a, b):
    """JSON equality: 1 == 1.0, but true != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _resolve(root, ref):
    if ref == "#":
        return root
    if not ref.startswith("#/"):
        raise SchemaError("only $ref within the file is supported, not %r" % ref)
    node = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise SchemaError("$ref %r does not resolve" % ref)
    return node


_RE_CACHE = {}


def _regex(p):
    r = _RE_CACHE.get(p)
    if r is None:
        try:
            r = re.compile(p)
        except re.error as e:
            raise SchemaError("bad pattern %r: %s" % (p, e))
        _RE_CACHE[p] = r
    return r


def _validate(v, s, root, path, errs, depth):
    if depth > 64:
        raise SchemaError("$ref recursion too deep at %s" % path)
    if s is True:
        return
    if s is False:
        errs.append("%s: nothing is allowed here" % path)
        return
    if not isinstance(s, dict):
        raise SchemaError("a schema must be an object or a bool at %s" % path)
    unknown = set(s) - KEYWORDS - ANNOTATIONS
    if unknown:
        raise SchemaError("unsupported keyword(s) %s at %s" % (", ".join(sorted(unknown)), path))

    if "$ref" in s:
        _validate(v, _resolve(root, s["$ref"]), root, path, errs, depth + 1)
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is_type(v, t) for t in types):
            errs.append("%s: expected %s, got %s" % (path, "|".join(types), type(v).__name__))
            return  # the other keywords would only add noise
    if "const" in s and not _equal(v, s["const"]):
        errs.append("%s: must be %r" % (path, s["const"]))
    if "enum" in s and not any(_equal(v, e) for e in s["enum"]):
        errs.append("%s: %r is not one of %r" % (path, v, s["enum"]))
    if isinstance(v, str):
        if "minLength" in s and len(v) < s["minLength"]:
            errs.append("%s: shorter than %d" % (path, s["minLength"]))
        if "maxLength" in s and len(v) > s["maxLength"]:
            errs.append("%s: longer than %d" % (path, s["maxLength"]))
        if "pattern" in s and not _regex(s["pattern"]).search(v):
            errs.append("%s: %r does not match %s" % (path, v, s["pattern"]))
    if _is_type(v, "number"):
        if "minimum" in s and v < s["minimum"]:
            errs.append("%s: %r < minimum %r" % (path, v, s["minimum"]))
        if "maximum" in s and v > s["maximum"]:
            errs.append("%s: %r > maximum %r" % (path, v, s["maximum"]))
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                errs.append("%s: %s is required" % (path, k))
        props = s.get("properties", {})
        for k, sub in props.items():
            if k in v:
                _validate(v[k], sub, root, "%s.%s" % (path, k), errs, depth + 1)
        extra = [k for k in v if k not in props]
        ap = s.get("additionalProperties", True)
        if ap is False and extra:
            errs.append("%s: unexpected member(s) %s" % (path, ", ".join(sorted(extra))))
        elif isinstance(ap, dict):
            for k in extra:
                _validate(v[k], ap, root, "%s.%s" % (path, k), errs, depth + 1)
    if isinstance(v, list) and "items" in s:
        for i, item in enumerate(v):
            _validate(item, s["items"], root, "%s[%d]" % (path, i), errs, depth + 1)
    if "not" in s:
        sub_errs = []
        _validate(v, s["not"], root, path, sub_errs, depth + 1)
        if not sub_errs:
            errs.append("%s: must not match %r" % (path, s["not"]))
    if "if" in s:
        cond = []
        _validate(v, s["if"], root, path, cond, depth + 1)
        branch = s.get("else" if cond else "then")
        if branch is not None:
            _validate(v, branch, root, path, errs, depth + 1)
    if "oneOf" in s:
        ok = 0
        for sub in s["oneOf"]:
            sub_errs = []
            _validate(v, sub, root, path, sub_errs, depth + 1)
            ok += not sub_errs
        if ok != 1:
            errs.append("%s: matches %d of the oneOf schemas, not exactly 1" % (path, ok))


def validate(instance, schema):
    """Errors of instance against schema ([] when valid). Raises SchemaError for a schema
    outside the supported subset."""
    errs = []
    _validate(instance, schema, schema, "$", errs, 0)
    return errs


def schemas_dir():
    src = os.environ.get("DYNO_SRC") or os.path.normpath(
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    return os.path.join(src, "schemas")


_SCHEMAS = {}


def load_schema(name):
    """schemas/<name>.schema.json, cached."""
    if name not in _SCHEMAS:
        with open(os.path.join(schemas_dir(), name + ".schema.json")) as fh:
            _SCHEMAS[name] = json.load(fh)
    return _SCHEMAS[name]


def check_event(topic, payload):
    """Errors of one message of dyno/v1/events/...: JSON, a known type whose schema
    schemas/event-<type>.schema.json accepts it, and "catalog" equal to the topic's."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError:
            return ["payload is not UTF-8"]
    try:
        doc = json.loads(payload)
    except ValueError as e:
        return ["payload is not JSON: %s" % e]
    if not isinstance(doc, dict) or not isinstance(doc.get("type"), str):
        return ["payload has no type"]
    t = doc["type"]
    if not re.fullmatch(r"[a-z]+(\.[a-z]+)+", t):
        return ["bad type %r" % t]
    try:
        schema = load_schema("event-" + t)
    except OSError:
        return ["no schema schemas/event-%s.schema.json for type %r" % (t, t)]
    errs = validate(doc, schema)
    if topic.startswith(EVENTS_PREFIX) and doc.get("catalog") != topic[len(EVENTS_PREFIX):]:
        errs.append("catalog %r is not the topic's %r" % (doc.get("catalog"), topic))
    return errs


class EventRecorder:
    """Records every message on dyno/v1/events/# of a running Fabric for its lifetime, with
    Debian's mosquitto_sub logged in as a service ("gateway-events-recorder": kind gateway,
    id events-recorder, the fabric's service token), and validates them at stop().

    Used by fabric.py's optional hook (Fabric.record_events, on unless DYNO_RECORD_EVENTS=0).
    """

    USERNAME = "gateway-events-recorder"

    def __init__(self, fab):
        self.fab = fab
        self.proc = None
        self.path = os.path.join(fab.tmp, "events-recorded.txt")
        self.err_path = os.path.join(fab.tmp, "events-recorder.err")
        self._out = self._err = None

    def start(self):
        import subprocess
        fj = self.fab.fabric or {}
        broker = fj.get("broker") or {}
        tok_file = fj.get("service_token_file") or os.path.join(self.fab.data, "secrets", "service.token")
        with open(tok_file) as fh:
            token = fh.read().strip()
        argv = ["mosquitto_sub", "-V", "mqttv5", "-h", str(broker.get("host", "127.0.0.1")),
                "-p", str(broker["port"]), "-i", self.USERNAME, "-u", self.USERNAME, "-P", token,
                "-q", "1", "-t", EVENTS_PREFIX + "#", "-v"]
        if broker.get("tls") and fj.get("cacert"):
            argv += ["--cafile", fj["cacert"]]
        self._out = open(self.path, "ab")
        self._err = open(self.err_path, "ab")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, start_new_session=True)
        return self

    def messages(self):
        """[(topic, payload)] recorded so far."""
        out = []
        try:
            with open(self.path, "rb") as fh:
                for line in fh.read().decode("utf-8", "replace").splitlines():
                    if not line.strip():
                        continue
                    topic, _, payload = line.partition(" ")
                    out.append((topic, payload))
        except OSError:
            pass
        return out

    def stop(self):
        """Stops the recorder; returns the list of problems (invalid events, a refused login)."""
        import subprocess
        import time
        problems = []
        if self.proc is not None:
            time.sleep(0.3)  # events published just before the stop
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
            self.proc = None
        for f in (self._out, self._err):
            if f:
                f.close()
        self._out = self._err = None
        try:
            with open(self.err_path, "rb") as fh:
                err = fh.read().decode("utf-8", "replace")
        except OSError:
            err = ""
        if "not authori" in err.lower() or "refused" in err.lower():
            problems.append("the event recorder could not log in: %s" % err.strip()[:300])
        for topic, payload in self.messages():
            for e in check_event(topic, payload):
                problems.append("%s %s: %s" % (topic, payload[:200], e))
        return problems
