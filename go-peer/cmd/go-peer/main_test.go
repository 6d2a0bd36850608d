//go:build linux && (amd64 || arm64)

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestUsageErrorsExitTwoWithOneLine(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage: go-peer COMMAND"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"get"}, "--key K or --file PATH is required"},
		{[]string{"get", "--key", "1", "--file", "x"}, "give --key or --file, not both"},
		{[]string{"get", "--key", "zz"}, `key "zz" is not a number in 1..0xffffffff`},
		{[]string{"get", "--key", "0x100000000"}, "is not a number in 1..0xffffffff"},
		{[]string{"get", "--key", "1", "--format", "xml"}, `--format "xml": want text, json or binary`},
		{[]string{"incr", "--key", "1", "--count", "0"}, "--count must be at least 1"},
		{[]string{"incr", "--key", "1", "--count", "5", "--wait", "sleepy"}, "want spin or park"},
		{[]string{"create", "--key", "1", "--mode", "9"}, `--mode "9" is not octal permission bits`},
		{[]string{"create", "--key", "1", "--type", "no.Such"}, "unknown message type (known: shmvar.examples.v1.AllTypes, shmvar.examples.v1.Counter, shmvar.examples.v1.Point)"},
		{[]string{"set", "--key", "1"}, "want 1 argument(s), got 0"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(c.args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("go-peer %v: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
		if c.args != nil && strings.Count(stderr.String(), "\n") != 1 {
			t.Errorf("go-peer %v: stderr is not one line: %q", c.args, stderr.String())
		}
	}
}

func TestParseKeyAcceptsDecimalAndHex(t *testing.T) {
	for in, want := range map[string]int32{"1": 1, "0x5eed": 0x5eed, "4294967295": -1, "0xffffffff": -1} {
		if got, err := parseKey(in); err != nil || got != want {
			t.Errorf("parseKey(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// keyGrammar is the one table of --key inputs both commands are held to
// (README, "Commands"): the key it reads, or 0 for a usage error.
var keyGrammar = []struct {
	in   string
	want uint32
}{
	{"1", 1}, {"10", 10}, {"1560281089", 0x5d000001}, {"4294967295", 0xffffffff},
	{"0x5d000002", 0x5d000002}, {"0X5D00000A", 0x5d00000a}, {"0x5d0000aB", 0x5d0000ab},
	{"0x00005d000003", 0x5d000003}, {"0xffffffff", 0xffffffff},
	{"010", 0}, {"00", 0}, {"0", 0}, {"0x0", 0}, {"0o12", 0}, {"0b1010", 0}, {"1_0", 0},
	{"0x1_0", 0}, {"+10", 0}, {"-1", 0}, {" 1", 0}, {"1 ", 0}, {"", 0}, {"0x", 0},
	{"4294967296", 0}, {"0x100000000", 0}, {"99999999999999999999", 0}, {"1e3", 0}, {"0xg", 0},
}

func TestParseKeyFollowsTheSharedGrammar(t *testing.T) {
	for _, c := range keyGrammar {
		got, err := parseKey(c.in)
		if c.want == 0 && err == nil {
			t.Errorf("parseKey(%q) = %#x; want it refused", c.in, uint32(got))
		}
		if c.want != 0 && (err != nil || uint32(got) != c.want) {
			t.Errorf("parseKey(%q) = %#x, %v; want %#x", c.in, uint32(got), err, c.want)
		}
	}
}

// TestBothCommandsShouldReadKeysAlike runs go-peer and bin/java-peer on each
// input: a refused key is a usage error (exit 2, one line naming the accepted
// forms) in both, and an accepted one is looked up (and, with no segment
// under it, missing: exit 1) under the same key in both. get only reads.
func TestBothCommandsShouldReadKeysAlike(t *testing.T) {
	javaPeer, err := filepath.Abs(filepath.Join("..", "..", "..", "bin", "java-peer"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(javaPeer), "..", "target", "java-peer.jar")); err != nil {
		t.Fatalf("target/java-peer.jar is missing: run 'make build' (make test does) first")
	}
	const forms = "in decimal without a leading zero (1..4294967295) or as 0x-hex (0x1..0xffffffff)"
	for _, c := range keyGrammar {
		var goOut, goErr bytes.Buffer
		goCode := run([]string{"get", "--key", c.in}, &goOut, &goErr)
		cmd := exec.Command(javaPeer, "get", "--key", c.in)
		var javaOut, javaErr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &javaOut, &javaErr
		javaCode := 0
		if err := cmd.Run(); err != nil {
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("java-peer: %v", err)
			}
			javaCode = exit.ExitCode()
		}
		for _, r := range []struct {
			name   string
			code   int
			stderr string
		}{{"go-peer", goCode, goErr.String()}, {"java-peer", javaCode, javaErr.String()}} {
			if r.code != 0 && strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("%s get --key %q: stderr is not one line: %q", r.name, c.in, r.stderr)
			}
			if c.want == 0 && (r.code != 2 || !strings.Contains(r.stderr, forms)) {
				t.Errorf("%s get --key %q: exit %d, stderr %q; want exit 2 naming the accepted forms", r.name, c.in, r.code, r.stderr)
			}
			// get of a key nobody uses: exit 1, naming the key it read (exit 0 if a segment is there).
			if want := fmt.Sprintf("key=0x%08x", c.want); c.want != 0 && r.code != 0 && (r.code != 1 || !strings.Contains(r.stderr, want)) {
				t.Errorf("%s get --key %q: exit %d, stderr %q; want exit 1 naming %s", r.name, c.in, r.code, r.stderr, want)
			}
		}
	}
}
