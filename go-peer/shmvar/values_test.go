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

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

// nestedAllTypes is an AllTypes whose innermost message is at depth
// (PROTOCOL.md, "Values"; the top-level message is at depth 0).
func nestedAllTypes(depth int) *examplespb.AllTypes {
	m := &examplespb.AllTypes{FInt32: int32(depth)}
	for i := 0; i < depth; i++ {
		m = &examplespb.AllTypes{Child: m}
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
	if _, err := v.Update(func(*examplespb.AllTypes) (*examplespb.AllTypes, error) { return tooDeep, nil }); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Update to a value at depth 101: %v; want ErrInvalidArgument", err)
	}
	if err := v.Mutate(func(m *examplespb.AllTypes) error { m.Child = tooDeep; return nil }); !errors.Is(err, shmvar.ErrInvalidArgument) {
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
	other, err := shmvar.Open[*examplespb.AllTypes](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if got, err := other.Get(); err != nil || !proto.Equal(got, deepest) {
		t.Fatalf("Go Get of a value at depth 100: %v", err)
	}
	k := shmvar.FormatKey(key)
	binary := &examplespb.AllTypes{}
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
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "VALUE is not a valid shmvar.examples.v1.AllTypes") {
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

// shmvarImage writes a valid layout-2.0 segment by hand, bypassing the
// library: desc as its descriptor and payload as the value of generation 0.
// It has no semaphore set, which only read-only opens do without.
func shmvarImage(t *testing.T, desc *shmvarpb.SegmentDescriptor, payload []byte) int32 {
	t.Helper()
	desc.LayoutVersion, desc.Capacity, desc.Creator = shmvar.LayoutVersion, 256, "go"
	raw, err := proto.Marshal(desc)
	if err != nil {
		t.Fatal(err)
	}
	align := func(n int) int { return (n + 63) &^ 63 }
	slot0 := align(shmvar.HeaderLength + len(raw))
	slot1 := slot0 + align(shmvar.SlotHeaderLength+256)
	length := slot1 + align(shmvar.SlotHeaderLength+256)
	return rawSegment(t, length, func(mem []byte) {
		le.PutUint32(mem[shmvar.MagicOffset:], shmvar.Magic)
		le.PutUint32(mem[shmvar.HeaderLengthOffset:], uint32(shmvar.HeaderLength))
		le.PutUint64(mem[shmvar.CapacityOffset:], 256)
		le.PutUint64(mem[shmvar.DescriptorOffsetOffset:], uint64(shmvar.HeaderLength))
		le.PutUint64(mem[shmvar.DescriptorLengthOffset:], uint64(len(raw)))
		le.PutUint64(mem[shmvar.Slot0OffsetOffset:], uint64(slot0))
		le.PutUint64(mem[shmvar.Slot1OffsetOffset:], uint64(slot1))
		le.PutUint64(mem[shmvar.SegmentLengthOffset:], uint64(length))
		copy(mem[shmvar.HeaderLength:], raw)
		le.PutUint32(mem[shmvar.DescriptorCrcOffset:], crc32c(raw))
		le.PutUint32(mem[slot0+shmvar.SlotLengthOffset:], uint32(len(payload)))
		le.PutUint32(mem[slot0+shmvar.SlotCrcOffset:], crc32c(payload))
		copy(mem[slot0+shmvar.SlotHeaderLength:], payload)
		le.PutUint32(mem[shmvar.LayoutVersionOffset:], shmvar.LayoutVersion) // last
	})
}

// field is a proto3 field of a hand-written schema.
func field(name string, number int32, typ descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
	f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(number), JsonName: proto.String(name),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), Type: typ.Enum()}
	if typeName != "" {
		f.TypeName = proto.String(typeName)
	}
	return f
}

// TestNoStoredSchemaShouldPanicAReader stores schemas that redefine
// well-known types, which JSON and text format handle by name: both
// languages refuse them at open, and both commands fail with one line.
func TestNoStoredSchemaShouldPanicAReader(t *testing.T) {
	msg := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	evil := &descriptorpb.FileDescriptorProto{
		Name: proto.String("evil/wkt.proto"), Package: proto.String("google.protobuf"), Syntax: proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			msg("Any", field("x", 3, descriptorpb.FieldDescriptorProto_TYPE_INT32, "")),
			msg("Timestamp", field("seconds", 1, descriptorpb.FieldDescriptorProto_TYPE_STRING, ""),
				field("nanos", 2, descriptorpb.FieldDescriptorProto_TYPE_INT32, "")),
		},
	}
	holder := &descriptorpb.FileDescriptorProto{
		Name: proto.String("evil/holder.proto"), Package: proto.String("evil"), Syntax: proto.String("proto3"),
		Dependency:  []string{"evil/wkt.proto"},
		MessageType: []*descriptorpb.DescriptorProto{msg("Holder", field("a", 1, descriptorpb.FieldDescriptorProto_TYPE_MESSAGE, ".google.protobuf.Any"))},
	}
	schema, err := proto.Marshal(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{evil, holder}})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		typ, want string
		payload   []byte
	}{
		{"google.protobuf.Any", "google.protobuf.Any", []byte{0x18, 0x01}},                        // x: 1
		{"google.protobuf.Timestamp", "google.protobuf.Any", []byte{0x0a, 0x01, 'a', 0x10, 0x01}}, // the first found
		{"evil.Holder", "google.protobuf.Any", []byte{0x0a, 0x02, 0x18, 0x01}},                    // a { x: 1 }
	}
	for _, c := range cases {
		t.Run(c.typ, func(t *testing.T) {
			key := shmvarImage(t, &shmvarpb.SegmentDescriptor{MessageType: c.typ, Schema: schema}, c.payload)
			want := "schema redefines well-known type " + c.want
			if _, err := shmvar.OpenAny(key, shmvar.Options{ReadOnly: true}); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), want) {
				t.Fatalf("OpenAny: %v; want ErrCorrupt: %s", err, want)
			}
			k := shmvar.FormatKey(key)
			for _, bin := range []string{goPeerBin(t), javaPeer(t)} {
				for _, args := range [][]string{{"get"}, {"get", "--format", "json"}, {"inspect"}, {"watch", "--count", "1"}, {"check", "--duration", "10ms"}} {
					args = append(args, "--key", k)
					_, errOut, code := runCommand(t, bin, args...)
					if code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "segment corrupt: "+want) {
						t.Errorf("%s %v: exit %d, stderr %q; want exit 1 and one line: segment corrupt: %s", filepath.Base(bin), args, code, errOut, want)
					}
				}
			}
		})
	}
	// Nor does Go create such a segment (ValuesTest checks Java).
	files, err := protodesc.NewFiles(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{evil, holder}})
	if err != nil {
		t.Fatal(err)
	}
	d, _ := files.FindDescriptorByName("evil.Holder")
	key := testKey(t)
	if v, err := shmvar.CreateOf(key, dynamicpb.NewMessageType(d.(protoreflect.MessageDescriptor)), shmvar.Options{}); !errors.Is(err, shmvar.ErrInvalidArgument) || !strings.Contains(err.Error(), "schema redefines well-known type google.protobuf.Any") {
		if err == nil {
			v.Remove()
		}
		t.Fatalf("CreateOf a type holding a redefined Any: %v; want ErrInvalidArgument", err)
	}
}

// TestInvalidUTF8ShouldBeRefusedOnWriteAndOnRead: a proto3 string holds
// valid UTF-8. Writers refuse anything else and commit nothing; readers
// report a hostile peer's invalid string as corrupt.
func TestInvalidUTF8ShouldBeRefusedOnWriteAndOnRead(t *testing.T) {
	key := testKey(t)
	v, _ := mustCreateAllTypes(t, key)
	k := shmvar.FormatKey(key)
	before, _ := v.Generation()
	if err := v.Set(&examplespb.AllTypes{FString: "\xff"}); !errors.Is(err, shmvar.ErrInvalidArgument) {
		t.Fatalf("Set of an invalid string: %v; want ErrInvalidArgument", err)
	}
	for _, bin := range []string{goPeerBin(t), javaPeer(t)} {
		for _, value := range []string{`f_string: "\xff"`, `child { r_string: ["ok", "\xc3"] }`, `m_string_int64 { key: "\xfe" value: 1 }`, `{"fString": "\udc00"}`} {
			out, errOut, code := runCommand(t, bin, "set", "--key", k, value)
			if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "VALUE is not a valid shmvar.examples.v1.AllTypes") {
				t.Errorf("%s set %s: exit %d, stdout %q, stderr %q; want exit 2 and one line", filepath.Base(bin), value, code, out, errOut)
			}
		}
	}
	if g, _ := v.Generation(); g != before {
		t.Fatalf("generation moved from %d to %d: an invalid string was committed", before, g)
	}

	// A hostile peer stores "\xff\xfe\xfd" where "abc" was, with a valid CRC.
	if err := v.Set(&examplespb.AllTypes{FString: "abc"}); err != nil {
		t.Fatal(err)
	}
	poke(t, key, func(mem []byte) {
		g := le.Uint64(mem[shmvar.GenerationOffset:])
		slot := int(le.Uint64(mem[shmvar.Slot0OffsetOffset+8*int(g&1):]))
		n := int(le.Uint32(mem[slot+shmvar.SlotLengthOffset:]))
		payload := mem[slot+shmvar.SlotHeaderLength : slot+shmvar.SlotHeaderLength+n]
		i := bytes.Index(payload, []byte("abc"))
		copy(payload[i:], "\xff\xfe\xfd")
		le.PutUint32(mem[slot+shmvar.SlotCrcOffset:], crc32c(payload))
	})
	other, err := shmvar.Open[*examplespb.AllTypes](key, shmvar.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Get(); !errors.Is(err, shmvar.ErrCorrupt) {
		t.Fatalf("Get of an invalid string: %v; want ErrCorrupt", err)
	}
	for _, bin := range []string{goPeerBin(t), javaPeer(t)} {
		for _, args := range [][]string{{"get"}, {"get", "--format", "json"}} {
			args = append(args, "--key", k)
			out, errOut, code := runCommand(t, bin, args...)
			if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "segment corrupt: value does not decode") {
				t.Errorf("%s %v of an invalid string: exit %d, stdout %q, stderr %q; want exit 1 and one line: segment corrupt", filepath.Base(bin), args, code, out, errOut)
			}
		}
	}
}
