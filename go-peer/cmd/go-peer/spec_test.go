//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"encoding/xml"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/clipb"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// TestSpecCopyIsFresh: the embedded commands.json is proto/cli/commands.json
// (make generate copies it).
func TestSpecCopyIsFresh(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "..", "proto", "cli", "commands.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(specJSON, want) {
		t.Fatal("go-peer/cmd/go-peer/commands.json differs from proto/cli/commands.json: run make generate")
	}
}

// TestSpecVersionIsThePoms: --version prints the project version Maven builds.
func TestSpecVersionIsThePoms(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "pom.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var pom struct {
		Version string `xml:"version"`
	}
	if err := xml.Unmarshal(data, &pom); err != nil {
		t.Fatal(err)
	}
	if pom.Version != spec.GetVersion() {
		t.Fatalf("pom.xml version %q, proto/cli/commands.json version %q: keep them equal", pom.Version, spec.GetVersion())
	}
}

// TestEveryCommandIsSpecified: the commands go-peer runs are those the
// specification lists, every flag has a type, a description and (unless a
// switch) a placeholder, and every default parses.
func TestEveryCommandIsSpecified(t *testing.T) {
	for name := range commands {
		if findCommand(name) == nil {
			t.Errorf("go-peer runs %s, which proto/cli/commands.json does not specify", name)
		}
	}
	for _, c := range spec.GetCommands() {
		if commands[c.GetName()] == nil {
			t.Errorf("proto/cli/commands.json specifies %s, which go-peer does not run", c.GetName())
		}
		if c.GetSummary() == "" || c.GetDescription() == "" {
			t.Errorf("%s: no summary or description", c.GetName())
		}
		for _, f := range c.GetFlags() {
			if f.GetType() == clipb.Flag_TYPE_UNSPECIFIED || f.GetDescription() == "" || (f.GetType() != clipb.Flag_SWITCH) == (f.GetValue() == "") {
				t.Errorf("%s --%s: type, description or placeholder missing", c.GetName(), f.GetName())
			}
			if f.GetDefault() != "" {
				if _, err := convert(f, f.GetDefault()); err != nil {
					t.Errorf("%s --%s: default %q does not parse: %v", c.GetName(), f.GetName(), f.GetDefault(), err)
				}
			}
		}
		// help prints every flag that is not hidden
		help := commandHelp(c)
		for _, f := range c.GetFlags() {
			if !f.GetHidden() && !strings.Contains(help, "--"+f.GetName()) {
				t.Errorf("%s help lacks --%s:\n%s", c.GetName(), f.GetName(), help)
			}
		}
	}
}

func TestEveryCommandAnswersHelp(t *testing.T) {
	for _, c := range spec.GetCommands() {
		// -h after a flag's value (not yet checked) and before an unknown option still asks for help
		first := c.GetFlags()[0]
		for _, args := range [][]string{{c.GetName(), "--help"}, {c.GetName(), "-h"}, {"help", c.GetName()}, {c.GetName(), "--" + first.GetName(), "zz", "-h", "--no-such-flag"}} {
			var out, errOut bytes.Buffer
			if code := run(args, &out, &errOut); code != 0 || !strings.HasPrefix(out.String(), "usage: go-peer "+c.GetName()) || errOut.Len() != 0 {
				t.Errorf("go-peer %v: exit %d, stdout %q, stderr %q", args, code, out.String(), errOut.String())
			}
		}
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"0s": 0, "500ms": 500 * time.Millisecond, "1m30s": 90 * time.Second, "1.5h": 90 * time.Minute,
		"200us": 200 * time.Microsecond, "200µs": 200 * time.Microsecond, "1.s": time.Second, ".5s": 500 * time.Millisecond,
		"1ns": 1, "1.9ns": 1, "2562047h47m16.854775807s": math.MaxInt64, "1h1m1s1ms1us1ns": time.Hour + time.Minute + time.Second + time.Millisecond + time.Microsecond + 1,
	} {
		if got, ok, inRange := parseDuration(in); !ok || !inRange || time.Duration(got) != want {
			t.Errorf("parseDuration(%q) = %v, %v, %v; want %v", in, time.Duration(got), ok, inRange, want)
		}
	}
	for _, in := range []string{"", "1", "-1s", "+1s", "1 s", "s", ".s", "1x", "1sm", "1e3s", "0x10s", " 1s", "1s "} {
		if _, ok, _ := parseDuration(in); ok {
			t.Errorf("parseDuration(%q) accepted", in)
		}
	}
	if _, ok, inRange := parseDuration("2562047h47m16.854775808s"); !ok || inRange {
		t.Errorf("parseDuration of one nanosecond too many: ok=%v inRange=%v", ok, inRange)
	}
}

func TestCanonicalFloats(t *testing.T) {
	for _, c := range []struct {
		f      float64
		single bool
		want   string
	}{
		{1.5, false, "1.5"}, {100, false, "100"}, {1e21, false, "1e+21"}, {1e20, false, "100000000000000000000"},
		{0.000001, false, "0.000001"}, {1e-7, false, "1e-7"}, {-1.7976931348623157e+308, false, "-1.7976931348623157e+308"},
		{float64(float32(3.4028235e+38)), true, "3.4028235e+38"}, {float64(float32(0.1)), true, "0.1"}, {float64(float32(0.1)), false, "0.10000000149011612"},
		{math.Copysign(0, -1), false, "-0"}, {5e-324, false, "5e-324"}, {0.30000000000000004, false, "0.30000000000000004"}, {123456789012, false, "123456789012"},
		{2.82879384806159e17, false, "282879384806159000"}, {2.82879384806159e22, false, "2.82879384806159e+22"},
	} {
		if got := canonFloat(c.f, c.single); got != c.want {
			t.Errorf("canonFloat(%v, %v) = %q; want %q", c.f, c.single, got, c.want)
		}
	}
}

// TestCanonicalTextReadsBack: the canonical text of AllTypes parses back to
// the same value, on one line.
func TestCanonicalTextReadsBack(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "proto", "testdata", "alltypes.txtpb"))
	if err != nil {
		t.Fatal(err)
	}
	want := &examplespb.AllTypes{}
	if err := prototext.Unmarshal(data, want); err != nil {
		t.Fatal(err)
	}
	text := canonText(want.ProtoReflect())
	got := &examplespb.AllTypes{}
	if err := prototext.Unmarshal([]byte(text), got); err != nil || !proto.Equal(got, want) || strings.Contains(text, "\n") {
		t.Fatalf("canonical text %q does not read back: %v", text, err)
	}
	if !strings.HasPrefix(text, `f_double: -1.7976931348623157e+308 f_float: 3.4028235e+38 f_int32: -2147483648`) ||
		!strings.Contains(text, `f_bytes: "\000\001\377\376shm"`) || !strings.Contains(text, `m_string_int64 { key: "minus" value: -1 } m_string_int64 { key: "one" value: 1 }`) {
		t.Fatalf("canonical text: %s", text)
	}
}
