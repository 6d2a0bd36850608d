package shmvar

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
)

// The conformance corpus (proto/shmvar/v1/conformance.proto): this file
// generates it, checks that the committed copy is fresh and runs it through
// both peers' testees (the hidden `conformance` subcommand of bin/go-peer
// and bin/java-peer).

var updateCorpus = flag.Bool("update", false, "rewrite proto/testdata/conformance from the generator")

const corpusCapacity = 512

// corpusImage builds a segment image as Create would, in private memory,
// with a fixed creator pid and time so that the corpus is reproducible;
// describe may change the descriptor first. Values are committed with Set.
func corpusImage(t testing.TB, describeAs proto.Message, edit func(*shmvarpb.SegmentDescriptor), values ...proto.Message) []byte {
	desc, _, _, err := describe(1, describeAs.ProtoReflect().Type(), corpusCapacity)
	if err != nil {
		t.Fatal(err)
	}
	desc.CreatorPid, desc.CreatedUnixNanos = 1, 1
	if edit != nil {
		edit(desc)
	}
	raw, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
	if err != nil {
		t.Fatal(err)
	}
	geo := newGeometry(corpusCapacity, uint64(len(raw)))
	mem := alignedCopy(make([]byte, geo.segmentLength))
	initialise(mem, geo, raw)
	if len(values) > 0 {
		v, err := newVar[proto.Message](memoryMapping{mem: mem}, 1, Options{})
		if err != nil {
			t.Fatal(err)
		}
		v.lk.index, v.lk.me = 0, 1 // as if it had claimed entry 0; image memory has no kernel object
		for _, value := range values {
			if err := v.Set(value); err != nil {
				t.Fatal(err)
			}
		}
	}
	return mem
}

// commitRaw commits payload as the next generation, bypassing the writer's
// checks: how a peer that breaks the protocol would write a value.
func commitRaw(mem, payload []byte) {
	g := le.Uint64(mem[GenerationOffset:]) + 1
	s := le.Uint64(mem[Slot0OffsetOffset+8*int(g&1):])
	le.PutUint32(mem[s+uint64(SlotLengthOffset):], uint32(len(payload)))
	le.PutUint32(mem[s+uint64(SlotCrcOffset):], crc32c(payload))
	le.PutUint64(mem[s+uint64(SlotGenerationOffset):], g)
	copy(mem[s+uint64(SlotHeaderLength):], payload)
	le.PutUint64(mem[GenerationOffset:], g)
}

// nested is an AllTypes holding depth levels of child.
func nested(depth int) []byte {
	var b []byte
	for i := 0; i < depth; i++ {
		b = append(protowire.AppendVarint(protowire.AppendTag(nil, 50, protowire.BytesType), uint64(len(b))), b...)
	}
	return b
}

// schemaWith is the Counter's schema with file added to its set.
func schemaWith(t testing.TB, desc *shmvarpb.SegmentDescriptor, file *descriptorpb.FileDescriptorProto) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(desc.Schema, &set); err != nil {
		t.Fatal(err)
	}
	set.File = append([]*descriptorpb.FileDescriptorProto{file}, set.File...)
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(&set)
	if err != nil {
		t.Fatal(err)
	}
	desc.Schema = b
}

func refused(kind shmvarpb.ErrorKind, fragment string) *shmvarpb.ConformanceRefusal {
	return &shmvarpb.ConformanceRefusal{Kind: kind, Message: fragment}
}

// corpus builds every case. Each rule of PROTOCOL.md's "Opening and
// validation" and "Reading (no lock)" has a case refused for it and a case
// that passes it (often the plain valid image).
func corpus(t testing.TB) []*shmvarpb.ConformanceCase {
	counter := &examplespb.Counter{Value: 42, LastWriter: "corpus"}
	valid := func() []byte { return corpusImage(t, counter, nil, counter) }
	edited := func(f func(mem []byte)) []byte { mem := valid(); f(mem); return mem }
	withDesc := func(f func(*shmvarpb.SegmentDescriptor)) []byte { return corpusImage(t, counter, f) }
	var cases []*shmvarpb.ConformanceCase
	accept := func(name, rule string, req *shmvarpb.ConformanceRequest, typeName string, payload []byte) {
		cases = append(cases, &shmvarpb.ConformanceCase{Name: name, Rule: rule, Request: req,
			Expected: &shmvarpb.ConformanceCase_Value{Value: &shmvarpb.ConformanceValue{MessageType: typeName, Payload: payload}}})
	}
	refuse := func(name, rule string, req *shmvarpb.ConformanceRequest, r *shmvarpb.ConformanceRefusal) {
		cases = append(cases, &shmvarpb.ConformanceCase{Name: name, Rule: rule, Request: req,
			Expected: &shmvarpb.ConformanceCase_Refusal{Refusal: r}})
	}
	img := func(mem []byte) *shmvarpb.ConformanceRequest { return &shmvarpb.ConformanceRequest{Image: mem} }
	encoded := func(m proto.Message) []byte { b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m); return b }
	const (
		corrupt  = shmvarpb.ErrorKind_CORRUPT
		version  = shmvarpb.ErrorKind_LAYOUT_VERSION
		counterT = "shmvar.examples.v1.Counter"
		allT     = "shmvar.examples.v1.AllTypes"
	)
	open1, open2, open3, open4 := "opening 1: size", "opening 2: magic", "opening 3: version and flags", "opening 4: header fields"
	open5, open6, read := "opening 5: descriptor", "opening 6: typed open", "reading"

	// The plain valid image, and what a value can hold.
	accept("valid-counter", read, img(valid()), counterT, encoded(counter))
	accept("valid-never-written", read+": generation 0 is slot 0's empty value", img(corpusImage(t, counter, nil)), counterT, nil)
	second := &examplespb.Counter{Value: 43}
	accept("valid-generation-2-slot-0", read+": the active slot is GENERATION & 1",
		img(corpusImage(t, counter, nil, counter, second)), counterT, encoded(second))
	all := &examplespb.AllTypes{FString: "ü", RInt64: []int64{1, 2, 3}, Child: &examplespb.AllTypes{FBool: true},
		MStringInt64: map[string]int64{"a": 1}, MInt32Point: map[int32]*examplespb.Point{7: {X: 1}}}
	accept("valid-alltypes", read, img(corpusImage(t, all, nil, all)), allT, encoded(all))

	// 1. Sizes.
	refuse("size-too-small", open1, img(valid()[:511]), refused(corrupt, "segment too small: size=511, header needs 512"))
	refuse("size-512-passes-size-check", open1+": 512 is enough to tell the version", img(valid()[:512]),
		refused(corrupt, "claims segment length"))
	accept("size-largest-segment", open1+": a sparse file of exactly the largest size",
		&shmvarpb.ConformanceRequest{Image: valid(), Size: MaxSegmentLength}, counterT, encoded(counter))
	refuse("size-larger-than-largest", open1, &shmvarpb.ConformanceRequest{Image: valid(), Size: MaxSegmentLength + 1},
		refused(corrupt, fmt.Sprintf("segment size=%d is larger than any shmvar segment (at most %d bytes)", MaxSegmentLength+1, MaxSegmentLength)))

	// 2. Magic and the init wait.
	refuse("magic-and-version-zero", open2+": not initialised after the wait", img(make([]byte, 4096)),
		refused(shmvarpb.ErrorKind_NOT_INITIALISED, "magic and version are zero"))
	refuse("magic-zero-version-set", open2, img(edited(func(m []byte) { le.PutUint32(m[MagicOffset:], 0) })),
		refused(shmvarpb.ErrorKind_NOT_SHMVAR, "magic=0x00000000, want 0x52415653"))
	refuse("magic-other", open2, img(edited(func(m []byte) { le.PutUint32(m[MagicOffset:], 0x52415654) })),
		refused(shmvarpb.ErrorKind_NOT_SHMVAR, "magic=0x52415654"))

	// 3. Version and flags.
	refuse("version-zero", open3+": a zero version after the wait", img(edited(func(m []byte) { le.PutUint32(m[LayoutVersionOffset:], 0) })),
		refused(shmvarpb.ErrorKind_NOT_INITIALISED, "version is zero after"))
	refuse("version-major-3", open3, img(edited(func(m []byte) { le.PutUint32(m[LayoutVersionOffset:], 3<<16) })),
		refused(version, "app=2.0 segment=3.0"))
	refuse("version-major-1", open3, img(edited(func(m []byte) { le.PutUint32(m[LayoutVersionOffset:], 1<<16) })),
		refused(version, "app=2.0 segment=1.0"))
	newerMinor := corpusImage(t, counter, func(d *shmvarpb.SegmentDescriptor) { d.LayoutVersion = 2<<16 | 1 })
	le.PutUint32(newerMinor[LayoutVersionOffset:], 2<<16|1)
	commitRaw(newerMinor, encoded(counter))
	accept("version-newer-minor", open3+": a newer minor is accepted", img(newerMinor), counterT, encoded(counter))
	refuse("flags-unknown-bit", open3, img(edited(func(m []byte) { le.PutUint32(m[FlagsOffset:], 1<<7|1) })),
		refused(version, "segment uses feature flags 0x00000081 that this peer does not know (app=2.0 knows 0x00000000)"))

	// 4. Header fields.
	refuse("header-length-512", open4, img(edited(func(m []byte) { le.PutUint32(m[HeaderLengthOffset:], 512) })),
		refused(corrupt, "header length=512, want 1536"))
	refuse("capacity-above-max", open4, img(edited(func(m []byte) { le.PutUint64(m[CapacityOffset:], uint64(MaxCapacity)+1) })),
		refused(corrupt, "capacity=268435457 exceeds maximum 268435456"))
	refuse("capacity-beyond-segment", open4, img(edited(func(m []byte) { le.PutUint64(m[CapacityOffset:], uint64(MaxCapacity)) })),
		refused(corrupt, "slot 0 offset="))
	refuse("segment-length-above-real-size", open4, img(edited(func(m []byte) { le.PutUint64(m[SegmentLengthOffset:], uint64(len(m))+1) })),
		refused(corrupt, "claims segment length"))
	accept("segment-length-below-real-size", open4+": a segment may be larger than asked",
		img(append(valid(), make([]byte, 4096)...)), counterT, encoded(counter))
	refuse("descriptor-offset-other", open4, img(edited(func(m []byte) { le.PutUint64(m[DescriptorOffsetOffset:], uint64(HeaderLength)+64) })),
		refused(corrupt, "descriptor offset="))
	refuse("descriptor-length-zero", open4, img(edited(func(m []byte) { le.PutUint64(m[DescriptorLengthOffset:], 0) })),
		refused(corrupt, "descriptor length=0"))
	refuse("descriptor-length-past-end", open4, img(edited(func(m []byte) { le.PutUint64(m[DescriptorLengthOffset:], 1<<63) })),
		refused(corrupt, "descriptor length="))
	refuse("descriptor-length-above-1mib", open4+": at most 1 MiB even inside the segment",
		&shmvarpb.ConformanceRequest{Image: edited(func(m []byte) { le.PutUint64(m[DescriptorLengthOffset:], uint64(MaxDescriptorLength)+1) }), Size: 2 << 20},
		refused(corrupt, "descriptor length="))
	refuse("slot-offset-misaligned", open4, img(edited(func(m []byte) { le.PutUint64(m[Slot1OffsetOffset:], le.Uint64(m[Slot1OffsetOffset:])+8) })),
		refused(corrupt, "slot 1 offset="))
	refuse("slot-offset-inside-descriptor", open4, img(edited(func(m []byte) { le.PutUint64(m[Slot0OffsetOffset:], uint64(HeaderLength)) })),
		refused(corrupt, "slot 0 offset="))
	refuse("slot-offset-wrapping-around", open4, img(edited(func(m []byte) { le.PutUint64(m[Slot1OffsetOffset:], ^uint64(63)) })),
		refused(corrupt, "slot 1 offset="))
	refuse("slot-offset-past-end", open4, img(edited(func(m []byte) { le.PutUint64(m[Slot1OffsetOffset:], uint64(len(m))) })),
		refused(corrupt, "slot 1 offset="))
	overlap := edited(func(m []byte) { copy(m[Slot1OffsetOffset:], m[Slot0OffsetOffset:Slot0OffsetOffset+8]) })
	slot0 := le.Uint64(overlap[Slot0OffsetOffset:])
	refuse("slots-overlap", open4, img(overlap),
		refused(corrupt, fmt.Sprintf("slots at %d and %d overlap", slot0, slot0)))
	accept("slots-swapped", open4+": slots may be in either order", img(edited(func(m []byte) {
		s0, s1 := le.Uint64(m[Slot0OffsetOffset:]), le.Uint64(m[Slot1OffsetOffset:])
		n := uint64(SlotHeaderLength + corpusCapacity)
		tmp := append([]byte(nil), m[s0:s0+n]...)
		copy(m[s0:], m[s1:s1+n])
		copy(m[s1:], tmp)
		le.PutUint64(m[Slot0OffsetOffset:], s1)
		le.PutUint64(m[Slot1OffsetOffset:], s0)
	})), counterT, encoded(counter))

	// 5. Descriptor and schema.
	garble := func(m []byte) {
		for i := HeaderLength; i < HeaderLength+16; i++ {
			m[i] = 0xff
		}
	}
	refuse("descriptor-crc-mismatch", open5, img(edited(garble)), refused(corrupt, "descriptor CRC32C mismatch"))
	refuse("descriptor-does-not-decode", open5+": a forged CRC", img(edited(func(m []byte) {
		garble(m)
		n := le.Uint64(m[DescriptorLengthOffset:])
		le.PutUint32(m[DescriptorCrcOffset:], crc32c(m[HeaderLength:uint64(HeaderLength)+n]))
	})), refused(corrupt, "descriptor does not decode"))
	refuse("descriptor-version-disagrees", open5, img(withDesc(func(d *shmvarpb.SegmentDescriptor) { d.LayoutVersion = 2<<16 | 1 })),
		refused(corrupt, "descriptor layout version=2.1, header=2.0"))
	refuse("descriptor-capacity-disagrees", open5, img(withDesc(func(d *shmvarpb.SegmentDescriptor) { d.Capacity = corpusCapacity + 1 })),
		refused(corrupt, "descriptor capacity=513, header=512"))
	refuse("schema-does-not-decode", open5, img(withDesc(func(d *shmvarpb.SegmentDescriptor) { d.Schema = []byte{0xff} })),
		refused(corrupt, "schema does not decode"))
	refuse("schema-invalid", open5+": the descriptor builder refuses it", img(withDesc(func(d *shmvarpb.SegmentDescriptor) {
		schemaWith(t, d, &descriptorpb.FileDescriptorProto{Name: proto.String("bad.proto"), Package: proto.String("bad"),
			Dependency: []string{"missing.proto"}})
	})), refused(corrupt, "schema is not valid"))
	// The rules beyond linking that both builders must agree on (PROTOCOL.md, "Schema rules"): each case adds
	// one small file that breaks one rule to a valid schema.
	type fdp = descriptorpb.FieldDescriptorProto
	opt, rep := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	i32, msgT := descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum()
	field := func(name string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *fdp {
		f := &fdp{Name: proto.String(name), Number: proto.Int32(n), Label: label, Type: typ, JsonName: proto.String(name)}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	ruleFile := func(syntax string, msgs []*descriptorpb.DescriptorProto, enums []*descriptorpb.EnumDescriptorProto) *descriptorpb.FileDescriptorProto {
		return &descriptorpb.FileDescriptorProto{Name: proto.String("rules.proto"), Package: proto.String("rules"),
			Syntax: proto.String(syntax), MessageType: msgs, EnumType: enums}
	}
	value := func(name string, n int32) *descriptorpb.EnumValueDescriptorProto {
		return &descriptorpb.EnumValueDescriptorProto{Name: proto.String(name), Number: proto.Int32(n)}
	}
	ruleCase := func(name, rule string, file *descriptorpb.FileDescriptorProto) {
		refuse(name, open5+": "+rule, img(withDesc(func(d *shmvarpb.SegmentDescriptor) { schemaWith(t, d, file) })),
			refused(corrupt, "schema is not valid"))
	}
	ruleCase("schema-rule-syntax-unknown", "syntax is proto2, proto3, editions or empty", ruleFile("proto4", nil, nil))
	ruleCase("schema-rule-name-invalid", "names are identifiers", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("Bad-Name")}}, nil))
	ruleCase("schema-rule-label-out-of-range", "a field's label is one of the three", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), Field: []*fdp{field("a", 1, descriptorpb.FieldDescriptorProto_Label(9).Enum(), i32, "")}}}, nil))
	ruleCase("schema-rule-enum-alias-without-aliases", "allow_alias only with aliases", ruleFile("proto3", nil,
		[]*descriptorpb.EnumDescriptorProto{{Name: proto.String("E"), Value: []*descriptorpb.EnumValueDescriptorProto{value("E_A", 0), value("E_B", 1)},
			Options: &descriptorpb.EnumOptions{AllowAlias: proto.Bool(true)}}}))
	ruleCase("schema-rule-enum-numbers-conflict", "one number per value without allow_alias", ruleFile("proto3", nil,
		[]*descriptorpb.EnumDescriptorProto{{Name: proto.String("E"), Value: []*descriptorpb.EnumValueDescriptorProto{value("E_A", 0), value("E_B", 0)}}}))
	ruleCase("schema-rule-enum-value-without-number", "every enum value has a number", ruleFile("proto3", nil,
		[]*descriptorpb.EnumDescriptorProto{{Name: proto.String("E"), Value: []*descriptorpb.EnumValueDescriptorProto{value("E_A", 0), {Name: proto.String("E_B")}}}}))
	ruleCase("schema-rule-oneof-not-consecutive", "a oneof's fields are declared together", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o")}},
			Field: []*fdp{
				func() *fdp { f := field("a", 1, opt, i32, ""); f.OneofIndex = proto.Int32(0); return f }(),
				field("b", 2, opt, i32, ""),
				func() *fdp { f := field("c", 3, opt, i32, ""); f.OneofIndex = proto.Int32(0); return f }()}}}, nil))
	ruleCase("schema-rule-oneof-field-repeated", "a oneof's fields are optional", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), OneofDecl: []*descriptorpb.OneofDescriptorProto{{Name: proto.String("o")}},
			Field: []*fdp{func() *fdp { f := field("a", 1, rep, i32, ""); f.OneofIndex = proto.Int32(0); return f }()}}}, nil))
	entry := func(name string) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Options: &descriptorpb.MessageOptions{MapEntry: proto.Bool(true)},
			Field: []*fdp{field("key", 1, opt, i32, ""), field("value", 2, opt, i32, "")}}
	}
	ruleCase("schema-rule-map-entry-misnamed", "a map entry is named after its field", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), NestedType: []*descriptorpb.DescriptorProto{entry("WrongEntry")},
			Field: []*fdp{field("things", 1, rep, msgT, ".rules.M.WrongEntry")}}}, nil))
	ruleCase("schema-rule-group-in-proto3", "no groups in proto3", ruleFile("proto3",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), NestedType: []*descriptorpb.DescriptorProto{{Name: proto.String("G")}},
			Field: []*fdp{field("g", 1, opt, descriptorpb.FieldDescriptorProto_TYPE_GROUP.Enum(), ".rules.M.G")}}}, nil))
	ruleCase("schema-rule-extension-range-from-zero", "field number ranges start at 1", ruleFile("proto2",
		[]*descriptorpb.DescriptorProto{{Name: proto.String("M"), ExtensionRange: []*descriptorpb.DescriptorProto_ExtensionRange{{Start: proto.Int32(0), End: proto.Int32(10)}}}}, nil))
	accept("schema-rule-map-entry-well-formed", open5+": the same file with the entry named as protoc names it",
		img(corpusImage(t, counter, func(d *shmvarpb.SegmentDescriptor) {
			schemaWith(t, d, ruleFile("proto3", []*descriptorpb.DescriptorProto{{Name: proto.String("M"),
				NestedType: []*descriptorpb.DescriptorProto{entry("ThingsEntry")}, Field: []*fdp{field("things", 1, rep, msgT, ".rules.M.ThingsEntry")}}}, nil))
		}, counter)), counterT, encoded(counter))
	refuse("schema-missing-type", open5, img(withDesc(func(d *shmvarpb.SegmentDescriptor) { d.MessageType = "shmvar.v1.Nope" })),
		refused(corrupt, `schema has no message "shmvar.v1.Nope"`))
	refuse("schema-redefines-well-known-type", open5, img(withDesc(func(d *shmvarpb.SegmentDescriptor) {
		schemaWith(t, d, &descriptorpb.FileDescriptorProto{Name: proto.String("evil.proto"), Package: proto.String("google.protobuf"),
			Syntax: proto.String("proto3"),
			MessageType: []*descriptorpb.DescriptorProto{{Name: proto.String("Any"), Field: []*descriptorpb.FieldDescriptorProto{{
				Name: proto.String("x"), Number: proto.Int32(1), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(),
				Type: descriptorpb.FieldDescriptorProto_TYPE_INT32.Enum(), JsonName: proto.String("x")}}}}})
	})), refused(corrupt, "schema redefines well-known type google.protobuf.Any"))
	accept("schema-exact-copy-of-well-known-file", open5, img(corpusImage(t, counter, func(d *shmvarpb.SegmentDescriptor) {
		schemaWith(t, d, protodesc.ToFileDescriptorProto(anypb.File_google_protobuf_any_proto))
	}, counter)), counterT, encoded(counter))

	// 6. Typed open.
	accept("typed-open-same-type", open6, &shmvarpb.ConformanceRequest{Image: valid(), MessageType: counterT}, counterT, encoded(counter))
	refuse("typed-open-wrong-type", open6, &shmvarpb.ConformanceRequest{Image: valid(), MessageType: allT},
		refused(shmvarpb.ErrorKind_TYPE_MISMATCH, "segment holds shmvar.examples.v1.Counter, asked for shmvar.examples.v1.AllTypes"))

	// Reading.
	slot1 := func(m []byte) uint64 { return le.Uint64(m[Slot1OffsetOffset:]) } // generation 1: slot 1
	refuse("slot-length-above-capacity", read, img(edited(func(m []byte) { le.PutUint32(m[slot1(m)+uint64(SlotLengthOffset):], corpusCapacity+1) })),
		refused(corrupt, "slot 1 length=513 exceeds capacity=512"))
	accept("slot-length-equal-to-capacity", read, img(func() []byte {
		m := corpusImage(t, counter, nil)
		full := &examplespb.Counter{LastWriter: strings.Repeat("x", corpusCapacity-3)}
		if n := len(encoded(full)); n != corpusCapacity {
			t.Fatalf("full value is %d bytes", n)
		}
		commitRaw(m, encoded(full))
		return m
	}()), counterT, encoded(&examplespb.Counter{LastWriter: strings.Repeat("x", corpusCapacity-3)}))
	refuse("slot-crc-mismatch", read, img(edited(func(m []byte) { m[slot1(m)+uint64(SlotHeaderLength)] ^= 0x40 })),
		refused(corrupt, "slot 1 CRC32C mismatch at generation 1"))
	refuse("slot-generation-disagrees", read, img(edited(func(m []byte) { le.PutUint64(m[slot1(m)+uint64(SlotGenerationOffset):], 7) })),
		refused(corrupt, "slot 1 generation=7"))
	refuse("slot-does-not-decode", read+": a valid CRC over bytes that do not parse", img(func() []byte {
		m := corpusImage(t, counter, nil)
		commitRaw(m, []byte{0xff}) // field 31, wire type 7: no such wire type
		return m
	}()), refused(corrupt, "does not decode"))
	nestedImage := func(depth int) []byte {
		m := corpusImage(t, all, nil)
		commitRaw(m, nested(depth))
		return m
	}
	accept("value-nested-100", "values: nesting depth", img(nestedImage(100)), allT, nested(100))
	refuse("value-nested-101", "values: nesting depth", img(nestedImage(101)), refused(corrupt, "value does not decode as shmvar.examples.v1.AllTypes"))
	badUTF8 := protowire.AppendString(protowire.AppendTag(nil, 2, protowire.BytesType), "\xff")
	refuse("value-invalid-utf8", "values: strings", img(func() []byte {
		m := corpusImage(t, counter, nil)
		commitRaw(m, badUTF8)
		return m
	}()), refused(corrupt, "value does not decode as shmvar.examples.v1.Counter"))
	return cases
}

// corpusRoot is the repository's root: go test runs in go-peer/shmvar.
func corpusRoot(t testing.TB) string {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func corpusDir(t testing.TB) string {
	return filepath.Join(corpusRoot(t), "proto", "testdata", "conformance")
}

// TestConformanceCorpusIsFresh fails when proto/testdata/conformance differs
// from what corpus builds; go test -run TestConformanceCorpusIsFresh -args
// -update rewrites it.
func TestConformanceCorpusIsFresh(t *testing.T) {
	want := map[string][]byte{}
	for _, c := range corpus(t) {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		want[c.Name+".binpb"] = b
	}
	dir := corpusDir(t)
	if *updateCorpus {
		os.RemoveAll(dir)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range want {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.binpb"))
	if len(files) != len(want) {
		t.Errorf("%s holds %d cases, the generator makes %d: go test ./shmvar -run TestConformanceCorpusIsFresh -args -update", dir, len(files), len(want))
	}
	for name, b := range want {
		if got, err := os.ReadFile(filepath.Join(dir, name)); err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s is stale or missing: go test ./shmvar -run TestConformanceCorpusIsFresh -args -update", name)
		}
	}
}

// readCorpus reads the committed corpus, sorted by name.
func readCorpus(t testing.TB) []*shmvarpb.ConformanceCase {
	files, _ := filepath.Glob(filepath.Join(corpusDir(t), "*.binpb"))
	sort.Strings(files)
	var cases []*shmvarpb.ConformanceCase
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		c := new(shmvarpb.ConformanceCase)
		if err := proto.Unmarshal(b, c); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		cases = append(cases, c)
	}
	if len(cases) == 0 {
		t.Fatal("no conformance cases in proto/testdata/conformance")
	}
	return cases
}

// runTestee starts a testee once, streams every request to it and returns
// its responses in order.
func runTestee(t *testing.T, cases []*shmvarpb.ConformanceCase, command string, args ...string) []*shmvarpb.ConformanceResponse {
	cmd := exec.Command(command, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		w := bufio.NewWriter(stdin)
		for _, c := range cases {
			b, _ := proto.Marshal(c.Request)
			w.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(b))))
			w.Write(b)
		}
		w.Flush()
		stdin.Close()
	}()
	r := bufio.NewReader(stdout)
	var out []*shmvarpb.ConformanceResponse
	for range cases {
		var n [4]byte
		if _, err := io.ReadFull(r, n[:]); err != nil {
			break
		}
		b := make([]byte, binary.LittleEndian.Uint32(n[:]))
		if _, err := io.ReadFull(r, b); err != nil {
			break
		}
		resp := new(shmvarpb.ConformanceResponse)
		if err := proto.Unmarshal(b, resp); err != nil {
			t.Fatalf("%s: response %d: %v", command, len(out), err)
		}
		out = append(out, resp)
	}
	io.Copy(io.Discard, stdout)
	if err := cmd.Wait(); err != nil || len(out) != len(cases) {
		t.Fatalf("%s %v: %v after %d of %d responses; stderr: %s", command, args, err, len(out), len(cases), stderr.String())
	}
	return out
}

// TestConformanceCorpusInBothLanguages runs every case of the committed
// corpus through bin/go-peer's and bin/java-peer's testees and requires the
// expected outcome of each.
func TestConformanceCorpusInBothLanguages(t *testing.T) {
	cases := readCorpus(t)
	root := corpusRoot(t)
	for _, built := range []string{"bin/go-peer", "target/java-peer.jar"} {
		if _, err := os.Stat(filepath.Join(root, built)); err != nil {
			t.Fatalf("%s is missing: run 'make build' (make test does) first", built)
		}
	}
	testees := map[string][]string{"go": {filepath.Join(root, "bin", "go-peer")}, "java": {filepath.Join(root, "bin", "java-peer")}}
	for _, lang := range []string{"go", "java"} {
		t.Run(lang, func(t *testing.T) {
			dir := t.TempDir()
			got := runTestee(t, cases, testees[lang][0], "conformance", "--dir", dir)
			for i, c := range cases {
				if problem := conformanceMismatch(c, got[i]); problem != "" {
					t.Errorf("case %s (%s): %s", c.Name, c.Rule, problem)
				}
			}
		})
	}
}

func conformanceMismatch(c *shmvarpb.ConformanceCase, got *shmvarpb.ConformanceResponse) string {
	if e := got.GetRuntimeError(); e != "" {
		return "testee failed: " + e
	}
	if want := c.GetValue(); want != nil {
		v := got.GetValue()
		switch {
		case v == nil:
			return fmt.Sprintf("refused (%v: %s); want a value", got.GetRefusal().GetKind(), got.GetRefusal().GetMessage())
		case v.MessageType != want.MessageType || !bytes.Equal(v.Payload, want.Payload):
			return fmt.Sprintf("read %s %x; want %s %x", v.MessageType, v.Payload, want.MessageType, want.Payload)
		}
		return ""
	}
	want, r := c.GetRefusal(), got.GetRefusal()
	switch {
	case r == nil:
		return fmt.Sprintf("read a value (%s %x); want refused (%v: %q)", got.GetValue().GetMessageType(), got.GetValue().GetPayload(), want.Kind, want.Message)
	case r.Kind != want.Kind || !strings.Contains(r.Message, want.Message):
		return fmt.Sprintf("refused (%v: %s); want (%v: containing %q)", r.Kind, r.Message, want.Kind, want.Message)
	case strings.Contains(r.Message, "\n"):
		return fmt.Sprintf("message is not one line: %q", r.Message)
	}
	return ""
}
