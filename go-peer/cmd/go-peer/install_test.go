//go:build linux && (amd64 || arm64)

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMakeInstallGivesTwoWorkingCommands runs make install into a fresh
// PREFIX (BUILD=: make test has built both) and uses the installed commands
// from outside the repository: java-peer must find its jar in
// PREFIX/share/shmvar, and both must share one file-backed value.
func TestMakeInstallGivesTwoWorkingCommands(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	prefix := t.TempDir()
	if out, err := exec.Command("make", "-s", "-C", root, "install", "PREFIX="+prefix, "BUILD=").CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	for _, f := range []string{"bin/go-peer", "bin/java-peer", "share/shmvar/java-peer.jar",
		"share/bash-completion/completions/go-peer", "share/bash-completion/completions/java-peer", "share/zsh/site-functions/_shmvar-peer"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			t.Errorf("make install did not install %s: %v", f, err)
		}
	}
	elsewhere := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(prefix, "bin", name), args...)
		cmd.Dir = elsewhere
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("installed %s %v: %v\n%s", name, args, err, out)
		}
		return string(out)
	}
	for _, name := range []string{"go-peer", "java-peer"} {
		if out := run(name, "--version"); out != name+" "+spec.GetVersion()+" (layout 2.0)\n" {
			t.Errorf("installed %s --version: %q", name, out)
		}
	}
	file := filepath.Join(elsewhere, "installed.svar")
	run("go-peer", "create", "--file", file)
	run("java-peer", "set", "--file", file, "value: 41")
	run("go-peer", "incr", "--file", file, "--count", "1", "--quiet")
	goValue, javaValue := run("go-peer", "get", "--file", file, "--format", "json"), run("java-peer", "get", "--file", file, "--format", "json")
	if !strings.HasPrefix(goValue, `{"value":"42","lastWriter":"go:`) || goValue != javaValue {
		t.Errorf("installed commands read %q and %q; want the same value 42", goValue, javaValue)
	}
	run("java-peer", "rm", "--file", file)
	// the installed bash completion completes both names
	cmd := exec.Command("bash", "-c", `source "$1"; complete -p go-peer java-peer`, "bash", filepath.Join(prefix, "share/bash-completion/completions/java-peer"))
	if out, err := cmd.CombinedOutput(); err != nil || strings.Count(string(out), "-F _shmvar_peer") != 2 {
		t.Errorf("installed bash completion: %v: %s", err, out)
	}
}
