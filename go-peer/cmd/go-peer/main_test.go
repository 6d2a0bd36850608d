package main

import (
	"bytes"
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
		{[]string{"create", "--key", "1", "--type", "no.Such"}, "unknown message type (known: shmvar.v1.AllTypes, shmvar.v1.Counter"},
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
