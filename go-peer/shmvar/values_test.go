package shmvar_test

// Values both languages must agree on: how deep a value may nest, which
// stored schemas are refused, and which strings are valid.

import (
	"bytes"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// nestedAllTypes is an AllTypes whose innermost message is at depth
// (PROTOCOL.md, "Values"; the top-level message is at depth 0).
func nestedAllTypes(depth int) *shmvarpb.AllTypes {
	m := &shmvarpb.AllTypes{FInt32: int32(depth)}
	for i := 0; i < depth; i++ {
		m = &shmvarpb.AllTypes{Child: m}
	}
	return m
}

func TestWritersShouldRefuseValuesNestedDeeperThanReadersAccept(t *testing.T) {
	key := testKey(t)
	v, _ := mustCreateAllTypes(t, key)
	before, _ := v.Generation()
	tooDeep := nestedAllTypes(shmvar.MaxNestingDepth + 1)
	if err := v.Set(tooDeep); !errors.Is(err, shmvar.ErrInvalidArgument) || !strings.Contains(err.Error(), "nests deeper than 100 levels") {
		t.Fatalf("Set of a value at depth 101: %v; want ErrInvalidArgument", err)
	}
	if _, err := v.Update(func(*shmvarpb.AllTypes) (*shmvarpb.AllTypes, error) { return tooDeep, nil }); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Update to a value at depth 101: %v; want ErrInvalidArgument", err)
	}
	if err := v.Mutate(func(m *shmvarpb.AllTypes) error { m.Child = tooDeep; return nil }); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Mutate to a value at depth 102: %v; want ErrInvalidArgument", err)
	}
	if g, _ := v.Generation(); g != before {
		t.Fatalf("generation moved from %d to %d: a refused value was committed", before, g)
	}
	// The deepest value allowed is committed, and read back by Go and Java.
	deepest := nestedAllTypes(shmvar.MaxNestingDepth)
	if err := v.Set(deepest); err != nil {
		t.Fatalf("Set of a value at depth 100: %v", err)
	}
	other, err := shmvar.Open[*shmvarpb.AllTypes](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, err := other.Get(); err != nil || !proto.Equal(got, deepest) {
		t.Fatalf("Go Get of a value at depth 100: %v", err)
	}
	k := shmvar.FormatKey(key)
	binary := &shmvarpb.AllTypes{}
	if err := (proto.UnmarshalOptions{RecursionLimit: 1000}).Unmarshal([]byte(mustRunJava(t, "get", "--key", k, "--format", "binary")), binary); err != nil || !proto.Equal(binary, deepest) {
		t.Fatalf("java-peer get of a value at depth 100: %v", err)
	}
	// Both commands refuse a VALUE deeper than that as a usage error (the
	// text and JSON parsers apply the same limit) and commit nothing.
	for _, format := range []string{"text", "json"} {
		var value []byte
		if format == "text" {
			value, _ = prototext.MarshalOptions{}.Marshal(tooDeep)
		} else {
			value, _ = protojson.MarshalOptions{}.Marshal(tooDeep)
		}
		for _, bin := range []string{goPeerBin(t), javaPeer(t)} {
			g, _ := v.Generation()
			out, errOut, code := runCommand(t, bin, "set", "--key", k, "--format", format, string(value))
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "VALUE is not a valid shmvar.v1.AllTypes") {
				t.Fatalf("%s set --format %s of a value at depth 101: exit %d, stdout %q, stderr %q; want exit 2 and one line", filepath.Base(bin), format, code, out, errOut)
			}
			if now, _ := v.Generation(); now != g {
				t.Fatalf("%s set committed a value at depth 101 (generation %d -> %d)", filepath.Base(bin), g, now)
			}
		}
	}
	// ... and both commit the deepest value allowed.
	for _, bin := range []string{goPeerBin(t), javaPeer(t)} {
		for _, format := range []string{"text", "json"} {
			var value []byte
			if format == "text" {
				value, _ = prototext.MarshalOptions{}.Marshal(deepest)
			} else {
				value, _ = protojson.MarshalOptions{}.Marshal(deepest)
			}
			if _, errOut, code := runCommand(t, bin, "set", "--key", k, "--format", format, string(value)); code != 0 {
				t.Fatalf("%s set --format %s of a value at depth 100: exit %d: %s", filepath.Base(bin), format, code, errOut)
			}
			if got, err := other.Get(); err != nil || !proto.Equal(got, deepest) {
				t.Fatalf("Go Get after %s set of a value at depth 100: %v", filepath.Base(bin), err)
			}
		}
	}
}

// runCommand runs bin (go-peer or java-peer) and returns its stdout, stderr
// and exit status.
func runCommand(t testing.TB, bin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.String(), stderr.String(), exit.ExitCode()
	} else if err != nil {
		t.Fatalf("%s %v: %v", bin, args, err)
	}
	return stdout.String(), stderr.String(), 0
}
