//go:build linux && (amd64 || arm64)

package main

// The golden parity test: bin/go-peer and bin/java-peer are one command in
// two languages (proto/cli/commands.json), so each case of the table below
// runs both with the same arguments and requires the same exit status (the
// one the case names), the same stdout byte for byte and the same stderr,
// after replacing each program's own name by PEER. A few cases mask numbers
// that change between the two runs (the kernel's segment count, which other
// tests move); each says which.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

type parityCase struct {
	name  string
	args  []string // {key}, {file}, {fresh}, {missing}, {dir}, {text}, {json}, {binary} are replaced
	stdin string   // {alltypes}: the AllTypes sample's encoding
	code  int      // the exit status both must give
	want  string   // stdout (code 0) or stderr (otherwise) must contain this, so that agreeing on nothing fails
	// fresh: {fresh} is a new AllTypes file (and {freshkey} a new segment)
	// before each program's run, so that a command that writes finds the
	// same state in both.
	fresh bool
	then  []string         // a second command, run after args by the same program, whose output is compared too
	keep  string           // compare only the stdout lines that contain this (ls lists every segment of the machine)
	mask  []*regexp.Regexp // matches are replaced by # in both outputs
	// during runs the command in the background and, once it has attached
	// to {fresh}, commits a value ("commit") or sends a signal ("SIGINT",
	// "SIGTERM").
	during string
	env    []string // added to the environment of both programs
}

// edgeValue has what the canonical printers could disagree on: -0, a float
// that is not a short double, enum numbers the schema does not name, bytes
// and control characters to escape, empty messages, an explicit zero, map
// keys out of order and the largest unsigned numbers.
const edgeValue = `f_double: -0 f_float: 0.1 f_enum: 7 r_enum: [COLOUR_RED, 9] f_bytes: "\x00\x7f\x80\xff\"\\" ` +
	`f_string: "a\x01\x1f\x7f\t\n\r\"\\z" f_message {} f_optional: 0 child { child { f_double: 1e300 f_float: 1e-45 } } ` +
	`m_int32_point { key: 3 value { x: 1 } } m_int32_point { key: -7 } m_string_int64 { key: "b" value: 1 } m_string_int64 { key: "B" value: 2 } ` +
	`m_string_int64 { key: "é" value: 3 } f_uint64: 18446744073709551615 f_fixed32: 4294967295 c_blob: ""`

// edgeText and edgeJSON are edgeValue as both commands must print it.
const edgeText = `f_double: -0 f_float: 0.1 f_uint64: 18446744073709551615 f_fixed32: 4294967295 f_string: "a\001\037\177\t\n\r\"\\z" ` +
	`f_bytes: "\000\177\200\377\"\\" f_enum: 7 f_message {} f_optional: 0 r_enum: COLOUR_RED r_enum: 9 ` +
	`m_string_int64 { key: "B" value: 2 } m_string_int64 { key: "b" value: 1 } m_string_int64 { key: "é" value: 3 } ` +
	`m_int32_point { key: -7 value {} } m_int32_point { key: 3 value { x: 1 } } c_blob: "" child { child { f_double: 1e+300 f_float: 1e-45 } }` + "\n"

const edgeJSON = `{"fDouble":-0,"fFloat":0.1,"fUint64":"18446744073709551615","fFixed32":4294967295,"fString":"a\u0001\u001f` + "\x7f" +
	`\t\n\r\"\\z","fBytes":"AH+A/yJc","fEnum":7,"fMessage":{},"fOptional":0,"rEnum":["COLOUR_RED",9],"mStringInt64":{"B":"2","b":"1","é":"3"},` +
	`"mInt32Point":{"-7":{},"3":{"x":1}},"cBlob":"","child":{"child":{"fDouble":1e+300,"fFloat":1e-45}}}` + "\n"

// columns is the space between ls's columns, whose widths follow every segment of the machine.
var columns = regexp.MustCompile(` {2,}`)

// strerror is the text of an errno in the library's messages, which Go
// writes in lower case ("no such file or directory (ENOENT)") and Java as
// strerror(3) does ("No such file or directory (ENOENT)"); the errno's name
// after it is compared.
var strerror = regexp.MustCompile(`: [A-Za-z][a-z ]+ \((E[A-Z]+)\)`)

var inUse = regexp.MustCompile(`\(\d+ in use\)|"(shmallInUse|shmmniInUse)":\d+`)

func parityCases() []parityCase {
	cases := []parityCase{
		{name: "no arguments lists the commands", code: 2, want: "commands:\n  create"},
		{name: "--help", args: []string{"--help"}, want: "usage: PEER COMMAND"},
		{name: "-h", args: []string{"-h"}, want: "usage: PEER COMMAND"},
		{name: "help", args: []string{"help"}, want: "  watch "},
		{name: "--version", args: []string{"--version"}, want: "PEER " + spec.GetVersion() + " (layout 2.0)\n"},
		{name: "--version extra", args: []string{"--version", "x"}, code: 2, want: `unexpected argument "x"`},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, want: `unknown command "frobnicate" (want create, get,`},
		{name: "help unknown command", args: []string{"help", "frobnicate"}, code: 2, want: `unknown command "frobnicate"`},
		{name: "help two commands", args: []string{"help", "get", "set"}, code: 2, want: `unexpected argument "set"`},
		{name: "option before the command", args: []string{"--key", "1", "get"}, code: 2, want: `unknown option "--key": give a COMMAND first`},
		{name: "demo is go-peer's", args: []string{"demo", "--help"}, want: "Only PEER has this command"},

		// the grammar: options, values, positional arguments
		{name: "target required", args: []string{"get"}, code: 2, want: "--key K or --file PATH is required"},
		{name: "target twice", args: []string{"get", "--key", "1", "--file", "x"}, code: 2, want: "give --key or --file, not both"},
		{name: "key not a number", args: []string{"get", "--key", "zz"}, code: 2, want: `key "zz" is not a number in 1..0xffffffff`},
		{name: "key octal-looking", args: []string{"get", "--key", "010"}, code: 2, want: `key "010" is not a number`},
		{name: "key too large", args: []string{"get", "--key", "0x100000000"}, code: 2, want: "is not a number in 1..0xffffffff"},
		{name: "single-dash option", args: []string{"get", "-key", "1"}, code: 2, want: `unknown option "-key" (did you mean --key?)`},
		{name: "unknown option", args: []string{"get", "--key", "1", "--colour", "red"}, code: 2, want: `unknown option "--colour"`},
		{name: "unknown short option", args: []string{"get", "-x"}, code: 2, want: `unknown option "-x"`},
		{name: "option of another command", args: []string{"get", "--key", "1", "--sync"}, code: 2, want: `unknown option "--sync"`},
		{name: "option given twice", args: []string{"get", "--key", "1", "--format=json", "--format", "text"}, code: 2, want: "option --format is given more than once"},
		{name: "option without its value", args: []string{"get", "--key"}, code: 2, want: "option --key needs a value (K)"},
		{name: "switch with a value", args: []string{"incr", "--key", "1", "--count", "1", "--quiet=yes"}, code: 2, want: "option --quiet takes no value"},
		{name: "unexpected argument", args: []string{"get", "--key", "1", "extra"}, code: 2, want: `unexpected argument "extra"`},
		{name: "after -- everything is an argument", args: []string{"get", "--key", "1", "--", "--format"}, code: 2, want: `unexpected argument "--format"`},
		{name: "empty path", args: []string{"get", "--file", ""}, code: 2, want: `--file "": want a non-empty value`},
		{name: "format choice", args: []string{"get", "--key", "1", "--format", "xml"}, code: 2, want: `--format "xml": want text, json or binary`},
		{name: "watch format choice", args: []string{"watch", "--key", "1", "--format", "binary"}, code: 2, want: `--format "binary": want text or json`},
		{name: "wait choice", args: []string{"incr", "--key", "1", "--count", "5", "--wait", "sleepy"}, code: 2, want: `--wait "sleepy": want spin or park`},
		{name: "count zero", args: []string{"incr", "--key", "1", "--count", "0"}, code: 2, want: `--count "0": want a whole number in 1..9223372036854775807`},
		{name: "count required", args: []string{"incr", "--key", "1"}, code: 2, want: "--count N is required"},
		{name: "count too large", args: []string{"incr", "--key", "1", "--count", "9223372036854775808"}, code: 2, want: "want a whole number in 1..9223372036854775807"},
		{name: "watch count negative", args: []string{"watch", "--key", "1", "--count", "-1"}, code: 2, want: `--count "-1": want a whole number in 0..9223372036854775807`},
		{name: "watch count with a sign", args: []string{"watch", "--key", "1", "--count", "+1"}, code: 2, want: `--count "+1": want a whole number`},
		{name: "hold negative", args: []string{"incr", "--key", "1", "--count", "1", "--hold", "-1s"}, code: 2, want: `--hold "-1s": want a duration such as 500ms, 2s or 1m30s`},
		{name: "pong timeout negative", args: []string{"pong", "--key", "1", "--rounds", "1", "--timeout", "-1s"}, code: 2, want: `--timeout "-1s": want a duration`},
		{name: "pong timeout zero", args: []string{"pong", "--key", "1", "--rounds", "1", "--timeout", "0s"}, code: 2, want: `--timeout "0s": want a duration from 1ns to 2562047h47m16.854775807s`},
		{name: "duration without unit", args: []string{"incr", "--key", "1", "--count", "1", "--timeout", "10"}, code: 2, want: `--timeout "10": want a duration`},
		{name: "duration too long", args: []string{"incr", "--key", "1", "--count", "1", "--timeout", "2562048h"}, code: 2, want: "want a duration from 1ns"},
		{name: "duration with a space", args: []string{"check", "--key", "1", "--interval", "5 s"}, code: 2, want: `--interval "5 s": want a duration`},
		{name: "pong after negative", args: []string{"pong", "--key", "1", "--rounds", "1", "--after", "-1"}, code: 2, want: `--after "-1": want a whole number in 0..`},
		{name: "mode not octal", args: []string{"create", "--key", "1", "--mode", "9"}, code: 2, want: `--mode "9" is not octal permission bits such as 0600`},
		{name: "mode too large", args: []string{"create", "--key", "1", "--mode", "1777"}, code: 2, want: `--mode "1777" is not octal permission bits`},
		{name: "capacity zero", args: []string{"create", "--key", "1", "--capacity", "0"}, code: 2, want: `--capacity "0": want a whole number in 1..268435456`},
		{name: "capacity too large", args: []string{"create", "--key", "1", "--capacity", "268435457"}, code: 2, want: "want a whole number in 1..268435456"},
		{name: "create unknown type", args: []string{"create", "--key", "1", "--type", "no.Such"}, code: 2, want: "--type no.Such: unknown message type (known: shmvar.examples.v1.AllTypes, shmvar.examples.v1.Counter, shmvar.examples.v1.Point)"},
		{name: "create a protocol type", args: []string{"create", "--key", "1", "--type", "shmvar.v1.SegmentDescriptor"}, code: 2, want: "--type shmvar.v1.SegmentDescriptor: unknown message type"},
		{name: "set without a value", args: []string{"set", "--key", "1"}, code: 2, want: "VALUE (or - to read stdin, or --value-file PATH) is required"},
		{name: "set value and file", args: []string{"set", "--key", "1", "--value-file", "x", "value: 1"}, code: 2, want: "give VALUE or --value-file, not both"},
		{name: "set two values", args: []string{"set", "--key", "1", "a", "b"}, code: 2, want: `unexpected argument "b"`},

		// the same value, read by both
		{name: "get text", args: []string{"get", "--key", "{key}"}, want: "f_double: -1.7976931348623157e+308 f_float: 3.4028235e+38 "},
		{name: "get json", args: []string{"get", "--key", "{key}", "--format", "json"}, want: `{"fDouble":-1.7976931348623157e+308,"fFloat":3.4028235e+38,"fInt32":-2147483648,"fInt64":"-9223372036854775808"`},
		{name: "get binary", args: []string{"get", "--key", "{key}", "--format", "binary"}, want: "shm"},
		{name: "get options after --key=", args: []string{"get", "--format=json", "--key={key}"}, want: `"fBool":true`},
		{name: "get counter", args: []string{"get", "--file", "{file}"}, want: "value: 7 last_writer: \"go:1\"\n"},
		{name: "get counter json", args: []string{"get", "--file", "{file}", "--format", "json"}, want: `{"value":"7","lastWriter":"go:1"}` + "\n"},
		{name: "get the wrong type", args: []string{"get", "--key", "{key}", "--type", "shmvar.examples.v1.Counter"}, code: 1, want: "payload type mismatch: segment holds shmvar.examples.v1.AllTypes, asked for shmvar.examples.v1.Counter"},
		{name: "get a protocol type", args: []string{"get", "--key", "{key}", "--type", "shmvar.v1.SegmentDescriptor"}, code: 1, want: "asked for shmvar.v1.SegmentDescriptor"},
		{name: "get a missing key", args: []string{"get", "--key", "{missing}"}, code: 1, want: "key={missing}", mask: []*regexp.Regexp{strerror}},
		{name: "get a missing file", args: []string{"get", "--file", "{dir}/none.svar"}, code: 1, want: "{dir}/none.svar", mask: []*regexp.Regexp{strerror}},
		{name: "inspect", args: []string{"inspect", "--key", "{key}"}, want: "type:            shmvar.examples.v1.AllTypes\n", mask: []*regexp.Regexp{inUse}},
		{name: "inspect json", args: []string{"inspect", "--key", "{key}", "--format", "json"}, want: `"type":"shmvar.examples.v1.AllTypes"`, mask: []*regexp.Regexp{inUse}},
		{name: "inspect file", args: []string{"inspect", "--file", "{file}"}, want: "value:           value: 7 last_writer: \"go:1\"\n", mask: []*regexp.Regexp{inUse}},
		{name: "inspect file json", args: []string{"inspect", "--file", "{file}", "--format", "json"}, want: `"value":{"value":"7","lastWriter":"go:1"}`, mask: []*regexp.Regexp{inUse}},
		{name: "check", args: []string{"check", "--key", "{key}", "--reads", "3", "--interval", "1ms"}, want: "check: reads=3 ok=3 opens=1 refused-opens=0\n"},
		{name: "check json", args: []string{"check", "--file", "{file}", "--format", "json", "--reads", "2", "--interval", "0s"}, want: `{"reads":2,"ok":2,"opens":1,"refusedOpens":0,"failed":{}}` + "\n"},
		{name: "check a missing file", args: []string{"check", "--file", "{dir}/none.svar"}, code: 1, want: "{dir}/none.svar", mask: []*regexp.Regexp{strerror}},
		{name: "ls", args: []string{"ls", "--dir", "{dir}"}, keep: "{file}", want: "file={file}#shmvar.examples.v1.Counter#4096#1#free#-#uid=", mask: []*regexp.Regexp{columns}},
		{name: "ls json", args: []string{"ls", "--dir", "{dir}", "--format", "json"}, keep: "{file}", want: `{"file":"{file}","type":"shmvar.examples.v1.Counter","capacity":4096,"generation":1,"lock":{"held":false},"attached":null,"owner":{"uid":`},
		{name: "ls a missing directory", args: []string{"ls", "--dir", "{dir}/none"}, code: 1, want: "--dir {dir}/none is not a directory this user can read"},

		// commands that write, each program on a fresh AllTypes file
		{name: "set text from stdin", fresh: true, args: []string{"set", "--file", "{fresh}", "-"}, stdin: "{text}", want: "set file={fresh} generation=1\n", then: []string{"get", "--file", "{fresh}", "--format", "json"}},
		{name: "set json from a file", fresh: true, args: []string{"set", "--file", "{fresh}", "--value-file", "{json}"}, want: "generation=1", then: []string{"get", "--file", "{fresh}"}},
		// not get --format binary: each language's encoder orders the fields its own way
		{name: "set binary from stdin", fresh: true, args: []string{"set", "--file", "{fresh}", "--format", "binary", "-"}, stdin: "{binary}", want: "generation=1", then: []string{"get", "--file", "{fresh}", "--format", "json"}},
		{name: "set an argument after the options", fresh: true, args: []string{"set", "f_int32: -5 r_string: \"a\\tb\"", "--file", "{fresh}", "--timeout", "1s"}, want: "generation=1", then: []string{"get", "--file", "{fresh}"}},
		{name: "edge values in text", fresh: true, args: []string{"set", "--file", "{fresh}", edgeValue}, want: edgeText, then: []string{"get", "--file", "{fresh}"}},
		{name: "edge values in json", fresh: true, args: []string{"set", "--file", "{fresh}", edgeValue}, want: edgeJSON, then: []string{"get", "--file", "{fresh}", "--format", "json"}},
		{name: "set non-ASCII in the C locale", fresh: true, env: []string{"LC_ALL=C", "LANG=C"}, args: []string{"set", "--file", "{fresh}", `f_string: "héllo 共享"`}, want: "generation=1", then: []string{"get", "--file", "{fresh}"}},
		{name: "set json special floats", fresh: true, args: []string{"set", "--file", "{fresh}", `{"fDouble": "NaN", "fFloat": "-Infinity", "fBytes": "AAE=", "fString": "a\u0001\"\\"}`}, want: "generation=1", then: []string{"get", "--file", "{fresh}", "--format", "json"}},
		{name: "set an unknown field", fresh: true, args: []string{"set", "--file", "{fresh}", "no_such_field: 1"}, code: 2, want: "VALUE is not a valid shmvar.examples.v1.AllTypes in text format: "},
		{name: "set bad json", fresh: true, args: []string{"set", "--file", "{fresh}", `{"fInt32": "x"`}, code: 2, want: "VALUE is not a valid shmvar.examples.v1.AllTypes in json format: "},
		{name: "set bad binary", fresh: true, args: []string{"set", "--file", "{fresh}", "--format", "binary", "-"}, stdin: "\xff\xff\xff", code: 2, want: "VALUE is not a valid shmvar.examples.v1.AllTypes in binary format: "},
		{name: "set from a missing file", fresh: true, args: []string{"set", "--file", "{fresh}", "--value-file", "{dir}/none.txt"}, code: 1, want: `cannot read --value-file "{dir}/none.txt": no such file`},
		{name: "create and remove", args: []string{"create", "--file", "{dir}/{case}.svar", "--type", "shmvar.examples.v1.Point", "--capacity", "100", "--mode", "640"}, want: "created file={dir}/{case}.svar type=shmvar.examples.v1.Point capacity=100\n", then: []string{"rm", "--file", "{dir}/{case}.svar"}},
		{name: "create a key", args: []string{"create", "--key", "{newkey}"}, want: "created key={newkey} type=shmvar.examples.v1.Counter capacity=4096\n", then: []string{"rm", "--key", "{newkey}"}},
		{name: "pong on another type", fresh: true, args: []string{"pong", "--file", "{fresh}", "--rounds", "1", "--timeout", "50ms"}, code: 1, want: "payload type mismatch: segment holds shmvar.examples.v1.AllTypes, asked for shmvar.examples.v1.Counter"},
		{name: "watch json", fresh: true, during: "commit", args: []string{"watch", "--file", "{fresh}", "--count", "1", "--format", "json"}, want: `{"generation":1,"value":{"fInt32":42,"rString":["a"]}}` + "\n"},
		{name: "watch text", fresh: true, during: "commit", args: []string{"watch", "--file", "{fresh}", "--count", "1"}, want: "generation=1 f_int32: 42 r_string: \"a\"\n"},
		{name: "watch stopped by SIGINT", fresh: true, during: "SIGINT", args: []string{"watch", "--file", "{fresh}"}, code: 130},
		{name: "watch stopped by SIGTERM", fresh: true, during: "SIGTERM", args: []string{"watch", "--file", "{fresh}"}, code: 143},
	}
	for _, c := range spec.GetCommands() {
		if c.GetHidden() {
			continue
		}
		// COMMAND --help prints what help COMMAND does (each language's unit tests check both)
		cases = append(cases, parityCase{name: "help " + c.GetName(), args: []string{"help", c.GetName()}, want: "usage: PEER " + c.GetName()})
	}
	return cases
}

// peerResult is what one program did.
type peerResult struct {
	code           int
	stdout, stderr string
}

func TestBothCommandsBehaveAlike(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	programs := map[string]string{"go-peer": filepath.Join(root, "bin", "go-peer"), "java-peer": filepath.Join(root, "bin", "java-peer")}
	for name, bin := range programs {
		if out, err := exec.Command(bin, "--version").CombinedOutput(); err != nil {
			t.Fatalf("%s --version: %v: %s (run make build; make test does)", name, err, out)
		}
	}
	dir := t.TempDir()
	sample := &examplespb.AllTypes{}
	data, err := os.ReadFile(filepath.Join(root, "proto", "testdata", "alltypes.txtpb"))
	if err != nil {
		t.Fatal(err)
	}
	if err := prototext.Unmarshal(data, sample); err != nil {
		t.Fatal(err)
	}
	binary, _ := proto.Marshal(sample)
	jsonValue, _ := protojson.Marshal(sample)
	must(t, os.WriteFile(filepath.Join(dir, "alltypes.json"), jsonValue, 0o600))

	key := parityKey(t)
	all, err := shmvar.Create[*examplespb.AllTypes](key, shmvar.Options{})
	must(t, err)
	must(t, all.Set(sample))
	all.Close()
	counterFile := filepath.Join(dir, "counter.svar")
	counter, err := shmvar.CreateFile[*examplespb.Counter](counterFile, shmvar.Options{})
	must(t, err)
	must(t, counter.Set(&examplespb.Counter{Value: 7, LastWriter: "go:1"}))
	counter.Close()
	missing := parityKey(t)

	for _, c := range parityCases() {
		c := c
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			slug := strings.NewReplacer(" ", "-", "/", "-").Replace(c.name)
			newKey := parityKey(t)
			fresh := filepath.Join(dir, "fresh-"+slug+".svar")
			subst := strings.NewReplacer("{key}", shmvar.FormatKey(key), "{missing}", shmvar.FormatKey(missing),
				"{newkey}", shmvar.FormatKey(newKey), "{file}", counterFile, "{fresh}", fresh, "{dir}", dir,
				"{json}", filepath.Join(dir, "alltypes.json"), "{text}", string(data), "{binary}", string(binary), "{case}", slug)
			expand := func(args []string) []string {
				out := make([]string, len(args))
				for i, a := range args {
					out[i] = subst.Replace(a)
				}
				return out
			}
			results := map[string]peerResult{}
			for name, bin := range programs {
				if c.fresh {
					os.Remove(fresh)
					v, err := shmvar.CreateFile[*examplespb.AllTypes](fresh, shmvar.Options{})
					must(t, err)
					v.Close()
				}
				r := runPeerCase(t, name, bin, expand(c.args), subst.Replace(c.stdin), c.during, fresh, c.env)
				if c.then != nil {
					then := runPeerCase(t, name, bin, expand(c.then), "", "", "", c.env)
					r.stdout += "\n--- then ---\n" + then.stdout
					r.stderr += then.stderr
					if then.code != 0 {
						t.Errorf("%s %v: exit %d: %s", name, expand(c.then), then.code, then.stderr)
					}
				}
				c.keep = subst.Replace(c.keep)
				r.stdout, r.stderr = canonicalOutput(r.stdout, c), canonicalOutput(r.stderr, c)
				results[name] = r
			}
			os.Remove(fresh)
			g, j := results["go-peer"], results["java-peer"]
			for name, r := range results {
				if r.code != c.code {
					t.Errorf("%s %q: exit %d; want %d (stderr %q)", name, c.args, r.code, c.code, r.stderr)
				}
				out := r.stdout
				if c.code != 0 {
					out = r.stderr
					if strings.Count(r.stderr, "\n") != 1 && c.code != 130 && c.code != 143 && len(c.args) > 0 {
						t.Errorf("%s %q: stderr is not one line: %q", name, c.args, r.stderr)
					}
				}
				if want := subst.Replace(c.want); !strings.Contains(out, want) {
					t.Errorf("%s %q: output lacks %q:\n%s", name, c.args, want, out)
				}
			}
			if g.stdout != j.stdout {
				t.Errorf("%q: stdout differs:\ngo-peer:   %q\njava-peer: %q", c.args, g.stdout, j.stdout)
			}
			gErr, jErr := g.stderr, j.stderr
			if strings.HasPrefix(c.want, "VALUE is not a valid") { // the parsers' own explanations differ: compare up to them
				gErr, jErr = cutAfter(gErr, c.want), cutAfter(jErr, c.want)
			}
			if gErr != jErr {
				t.Errorf("%q: stderr differs:\ngo-peer:   %q\njava-peer: %q", c.args, g.stderr, j.stderr)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// parityKey is a System V key no segment uses (0x5f......), removed with
// its semaphore set when the test ends.
func parityKey(t *testing.T) uint32 {
	for {
		key := uint32(0x5f000000 | rand.Int31n(0xffffff))
		if _, err := unix.SysvShmGet(int(int32(key)), 0, 0); errors.Is(err, unix.ENOENT) {
			t.Cleanup(func() { shmvar.RemoveKey(key) })
			return key
		}
	}
}

func cutAfter(s, marker string) string {
	if i := strings.Index(s, marker); i >= 0 {
		return s[:i+len(marker)]
	}
	return s
}

// canonicalOutput replaces the programs' names, keeps the lines a case
// compares and masks what it masks.
func canonicalOutput(s string, c parityCase) string {
	s = strings.NewReplacer("go-peer", "PEER", "java-peer", "PEER").Replace(s)
	if c.keep != "" {
		var kept []string
		for _, line := range strings.SplitAfter(s, "\n") {
			if strings.Contains(line, c.keep) || strings.HasPrefix(line, "SEGMENT") {
				kept = append(kept, line)
			}
		}
		s = strings.Join(kept, "")
	}
	for _, m := range c.mask {
		s = m.ReplaceAllString(s, "#${1}")
	}
	return s
}

// runPeerCase runs one program from a directory outside the repository.
func runPeerCase(t *testing.T, name, bin string, args []string, stdin, during, fresh string, env []string) peerResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = os.TempDir()
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	must(t, cmd.Start())
	var wg sync.WaitGroup
	if during != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			duringRun(t, name, cmd, during, fresh)
		}()
	}
	err := cmd.Wait()
	wg.Wait()
	code := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal()) // died of the signal without handling it
		}
	} else if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return peerResult{code, stdout.String(), stderr.String()}
}

// duringRun waits until the watcher has claimed its attachment in fresh and
// counts itself among the change watchers (so that it has read the
// generation it waits past), then commits a value or signals it.
func duringRun(t *testing.T, name string, cmd *exec.Cmd, during, fresh string) {
	v, err := shmvar.OpenFile[*examplespb.AllTypes](fresh, shmvar.Options{})
	if err != nil {
		t.Errorf("%s: %v", name, err)
		cmd.Process.Kill()
		return
	}
	defer v.Close()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		if a, _ := v.Attachments(); len(a) >= 2 && watchers(fresh) > 0 { // ours and the watcher's
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("%s never attached", name)
			cmd.Process.Kill()
			return
		}
	}
	switch during {
	case "commit":
		if err := v.Set(&examplespb.AllTypes{FInt32: 42, RString: []string{"a"}}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	case "SIGINT":
		cmd.Process.Signal(os.Interrupt)
	case "SIGTERM":
		cmd.Process.Signal(syscall.SIGTERM)
	default:
		panic(fmt.Sprint("no such action ", during))
	}
}

// watchers reads the count of change watchers parked or about to park from
// the file's header.
func watchers(path string) uint32 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.ReadAt(b[:], int64(shmvar.GenerationWaitersOffset)); err != nil {
		return 0
	}
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}
