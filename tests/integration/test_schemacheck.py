"""Tests of schemacheck.py (no fabric): the validator on small schemas, and every file of
schemas/ is inside the supported subset and accepts its own examples of events."""

import glob
import json
import os
import unittest

import schemacheck
from schemacheck import SchemaError, check_event, validate

KEY = "0123456789abcdef0123456789abcdef"
SHA = "ab" * 32


class ValidatorTest(unittest.TestCase):
    def ok(self, v, s):
        self.assertEqual(validate(v, s), [], "%r should match %r" % (v, s))

    def bad(self, v, s):
        self.assertNotEqual(validate(v, s), [], "%r should not match %r" % (v, s))

    def test_type(self):
        self.ok(1, {"type": "integer"})
        self.ok(1.0, {"type": "integer"})
        self.bad(1.5, {"type": "integer"})
        self.bad(True, {"type": "integer"})
        self.bad(True, {"type": "number"})
        self.ok(False, {"type": "boolean"})
        self.ok(None, {"type": ["string", "null"]})
        self.bad(3, {"type": ["string", "null"]})
        self.ok([], {"type": "array"})
        self.bad({}, {"type": "array"})
        self.ok({}, {"type": "object"})

    def test_object(self):
        s = {"type": "object", "required": ["a"], "additionalProperties": False,
             "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}}
        self.ok({"a": "x"}, s)
        self.ok({"a": "x", "b": 2}, s)
        self.bad({"b": 2}, s)
        self.bad({"a": "x", "c": 1}, s)
        self.bad({"a": 1}, s)
        s2 = {"type": "object", "additionalProperties": {"type": "integer"}}
        self.ok({"x": 1}, s2)
        self.bad({"x": "1"}, s2)

    def test_strings(self):
        s = {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[a-c]+$"}
        self.ok("ab", s)
        self.bad("a", s)
        self.bad("abca", s)
        self.bad("ad", s)
        self.ok("é" * 3, {"maxLength": 3})  # code points, not bytes
        self.ok("xxabxx", {"pattern": "ab"})  # searched, not anchored

    def test_numbers_enum_const(self):
        self.ok(5, {"minimum": 0, "maximum": 5})
        self.bad(6, {"maximum": 5})
        self.bad(-1, {"minimum": 0})
        self.ok("read", {"enum": ["read", "write"]})
        self.bad("none", {"enum": ["read", "write"]})
        self.ok("x", {"const": "x"})
        self.bad(1, {"const": True})
        self.ok(1.0, {"const": 1})

    def test_items_ref_oneof(self):
        s = {"$defs": {"n": {"type": "integer", "minimum": 0}},
             "type": "array", "items": {"$ref": "#/$defs/n"}}
        self.ok([0, 1], s)
        self.bad([0, -1], s)
        one = {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 10}]}
        self.ok(3, one)       # integer only
        self.ok(10.5, one)    # number >= 10 only
        self.bad(12, one)     # both
        self.bad("x", one)    # neither
        self.assertIn("$[1]", validate([0, -1], s)[0])

    def test_if_then_else(self):
        s = {"if": {"properties": {"kind": {"const": "user"}}},
             "then": {"properties": {"p": {"pattern": "^[a-z]+$"}}},
             "else": {"properties": {"p": {"pattern": "^[a-z/]+$"}}}}
        self.ok({"kind": "user", "p": "bob"}, s)
        self.bad({"kind": "user", "p": "lab/ct"}, s)
        self.ok({"kind": "org", "p": "lab/ct"}, s)

    def test_not(self):
        self.ok("a", {"not": {"const": "b"}})
        self.bad("b", {"not": {"const": "b"}})

    def test_schema_errors(self):
        with self.assertRaises(SchemaError):
            validate(1, {"multipleOf": 2})
        with self.assertRaises(SchemaError):
            validate(1, {"$ref": "other.json#/x"})
        with self.assertRaises(SchemaError):
            validate(1, {"$ref": "#/nope"})
        with self.assertRaises(SchemaError):
            validate(1, {"type": "float"})


class EventSchemasTest(unittest.TestCase):
    def test_every_schema_is_in_the_subset(self):
        files = glob.glob(os.path.join(schemacheck.schemas_dir(), "*.schema.json"))
        self.assertTrue(files, "no schemas found in %s" % schemacheck.schemas_dir())
        for f in files:
            with open(f) as fh:
                s = json.load(fh)
            # an empty object exercises the top level; walking every keyword is done below
            try:
                validate({}, s)
                validate([], s)
            except SchemaError as e:
                self.fail("%s: %s" % (os.path.basename(f), e))

    def test_object_events(self):
        for t in ("object.created", "object.evicted", "object.degraded", "object.repaired"):
            ev = {"type": t, "catalog": "alice/x/y", "time": 1767139200000,
                  "object": {"key": KEY, "name": "r1.csv", "size": 12, "sha256": SHA}}
            self.assertEqual(check_event("dyno/v1/events/alice/x/y", json.dumps(ev)), [], t)
            bad = json.loads(json.dumps(ev))
            bad["object"]["key"] = "XYZ"
            self.assertNotEqual(check_event("dyno/v1/events/alice/x/y", json.dumps(bad)), [])
            bad = json.loads(json.dumps(ev))
            del bad["object"]["sha256"]
            self.assertNotEqual(check_event("dyno/v1/events/alice/x/y", json.dumps(bad)), [])
            bad = json.loads(json.dumps(ev))
            bad["extra"] = 1
            self.assertNotEqual(check_event("dyno/v1/events/alice/x/y", json.dumps(bad)), [])
            # the catalog must be the topic's
            self.assertNotEqual(check_event("dyno/v1/events/alice/x", json.dumps(ev)), [])

    def test_shared_event(self):
        ev = {"type": "catalog.shared", "catalog": "alice/x", "time": 1, "principal": "bob",
              "kind": "user", "access": "none"}
        self.assertEqual(check_event("dyno/v1/events/alice/x", json.dumps(ev)), [])
        ev["access"] = "all"
        self.assertNotEqual(check_event("dyno/v1/events/alice/x", json.dumps(ev)), [])

    def test_garbage(self):
        self.assertNotEqual(check_event("dyno/v1/events/a/b", b"not json"), [])
        self.assertNotEqual(check_event("dyno/v1/events/a/b", b'{"type":"no.such"}'), [])
        self.assertNotEqual(check_event("dyno/v1/events/a/b", b"[1]"), [])


if __name__ == "__main__":
    unittest.main()
