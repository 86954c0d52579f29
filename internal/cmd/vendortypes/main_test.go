package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/entrasync/entrasync/internal/deploycheck"
)

// A types.json in the shape of github.com/Azure/bicep-types-az: a resource
// whose body has a read-only and a writable property, a closed and an open
// enumeration, an array and a dictionary; and a type discriminated by name.
const typesJSON = `[
 {"$type": "StringType"},
 {"$type": "ResourceType", "name": "Microsoft.X/things@2024-01-01", "body": {"$ref": "#/2"}},
 {"$type": "ObjectType", "name": "Microsoft.X/things", "properties": {
   "id": {"type": {"$ref": "#/0"}, "flags": 10},
   "name": {"type": {"$ref": "#/0"}, "flags": 9},
   "properties": {"type": {"$ref": "#/3"}, "flags": 0},
   "tags": {"type": {"$ref": "#/8"}, "flags": 0}}},
 {"$type": "ObjectType", "name": "ThingProperties", "properties": {
   "state": {"type": {"$ref": "#/0"}, "flags": 2},
   "mode": {"type": {"$ref": "#/4"}, "flags": 0},
   "size": {"type": {"$ref": "#/7"}, "flags": 0},
   "parts": {"type": {"$ref": "#/9"}, "flags": 0},
   "self": {"type": {"$ref": "#/3"}, "flags": 0}}},
 {"$type": "UnionType", "elements": [{"$ref": "#/5"}, {"$ref": "#/6"}]},
 {"$type": "StringLiteralType", "value": "On"},
 {"$type": "StringLiteralType", "value": "Off"},
 {"$type": "UnionType", "elements": [{"$ref": "#/5"}, {"$ref": "#/0"}]},
 {"$type": "ObjectType", "name": "Tags", "properties": {}, "additionalProperties": {"$ref": "#/0"}},
 {"$type": "ArrayType", "itemType": {"$ref": "#/0"}},
 {"$type": "ResourceType", "name": "Microsoft.X/things/config@2024-01-01", "body": {"$ref": "#/11"}},
 {"$type": "DiscriminatedObjectType", "name": "config", "discriminator": "name", "baseProperties": {},
   "elements": {"a": {"$ref": "#/12"}, "b": {"$ref": "#/2"}}},
 {"$type": "ObjectType", "name": "A", "properties": {"only": {"type": {"$ref": "#/0"}, "flags": 0}}}
]`

func TestVendorTypes(t *testing.T) {
	dir := t.TempDir()
	in, out := filepath.Join(dir, "types.json"), filepath.Join(dir, "out.json")
	if err := os.WriteFile(in, []byte(typesJSON), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run(out, "test", []string{"Microsoft.X/things@2024-01-01=" + in, "Microsoft.X/things/config@2024-01-01#a=" + in}); err != nil {
		t.Fatal(err)
	}
	s, err := deploycheck.LoadSchemas(out)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &deploycheck.Node{}
	want := &deploycheck.Schemas{Source: "test", Types: map[string]*deploycheck.Node{
		"Microsoft.X/things@2024-01-01": {Props: map[string]*deploycheck.Node{
			"name": leaf, // id is read-only: dropped
			"properties": {Props: map[string]*deploycheck.Node{ // state is read-only: dropped
				"mode":  {Enum: []string{"Off", "On"}}, // closed
				"size":  leaf,                          // open: a literal or any string
				"parts": {Items: leaf},
				"self":  {Any: true}, // a cycle
			}},
			"tags": {Extra: leaf},
		}},
		"Microsoft.X/things/config@2024-01-01#a": {Props: map[string]*deploycheck.Node{"only": leaf}},
	}}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("schemas (-want +got):\n%s", diff)
	}
	raw, _ := os.ReadFile(out)
	if !json.Valid(raw) {
		t.Error("output is not JSON")
	}
	if err := run(out, "", []string{"Microsoft.X/things/config@2024-01-01=" + in}); err == nil {
		t.Error("a discriminated type without its value was accepted")
	}
	if err := run(out, "", []string{"Microsoft.X/nothing@2024-01-01=" + in}); err == nil {
		t.Error("a missing type was accepted")
	}
}
