package shmvar

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/fieldmaskpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The segment layout, from proto/shmvar/v1/layout.proto (see proto/PROTOCOL.md).
// The Java twin is io.shmvar.LayoutDescriptor.
//
//	0        128      256        384      512          1536         1536+D   slot0       slot1
//	+--------+--------+----------+--------+------------+------------+--------+-----------+-----------+
//	|identity| lock   |generation|reserved| attachments| descriptor | pad 64 | hdr|value | hdr|value |
//	+--------+--------+----------+--------+------------+------------+--------+-----------+-----------+
//
//	identity: magic u32 | version u32 | header length u32 | flags u32 | capacity u64 |
//	          descriptor offset u64 | descriptor length u64 | slot0 u64 | slot1 u64 | segment length u64 |
//	          descriptor crc32c u32
//	lock:     lock word u64 | lock futex u32 | lock waiters u32 | contended u64 | takeovers u64
//	gen:      generation u64 | generation futex u32 | generation waiters u32
//	entry i:  incarnation u32 | pid u32 | pid namespace u64   (64 entries of 16 bytes)
//	slot hdr: length u32 | crc32c u32 | generation u64
const (
	MagicOffset            = int(shmvarpb.SegmentLayout_MAGIC_OFFSET)
	LayoutVersionOffset    = int(shmvarpb.SegmentLayout_LAYOUT_VERSION_OFFSET)
	HeaderLengthOffset     = int(shmvarpb.SegmentLayout_HEADER_LENGTH_OFFSET)
	FlagsOffset            = int(shmvarpb.SegmentLayout_FLAGS_OFFSET)
	CapacityOffset         = int(shmvarpb.SegmentLayout_CAPACITY_OFFSET)
	DescriptorOffsetOffset = int(shmvarpb.SegmentLayout_DESCRIPTOR_OFFSET_OFFSET)
	DescriptorLengthOffset = int(shmvarpb.SegmentLayout_DESCRIPTOR_LENGTH_OFFSET)
	Slot0OffsetOffset      = int(shmvarpb.SegmentLayout_SLOT0_OFFSET_OFFSET)
	Slot1OffsetOffset      = int(shmvarpb.SegmentLayout_SLOT1_OFFSET_OFFSET)
	SegmentLengthOffset    = int(shmvarpb.SegmentLayout_SEGMENT_LENGTH_OFFSET)
	DescriptorCrcOffset    = int(shmvarpb.SegmentLayout_DESCRIPTOR_CRC_OFFSET)

	LockWordOffset       = int(shmvarpb.SegmentLayout_LOCK_WORD_OFFSET)
	LockFutexOffset      = int(shmvarpb.SegmentLayout_LOCK_FUTEX_OFFSET)
	LockWaitersOffset    = int(shmvarpb.SegmentLayout_LOCK_WAITERS_OFFSET)
	ContendedCountOffset = int(shmvarpb.SegmentLayout_CONTENDED_COUNT_OFFSET)
	TakeoverCountOffset  = int(shmvarpb.SegmentLayout_TAKEOVER_COUNT_OFFSET)

	GenerationOffset        = int(shmvarpb.SegmentLayout_GENERATION_OFFSET)
	GenerationFutexOffset   = int(shmvarpb.SegmentLayout_GENERATION_FUTEX_OFFSET)
	GenerationWaitersOffset = int(shmvarpb.SegmentLayout_GENERATION_WAITERS_OFFSET)

	AttachmentTableOffset        = int(shmvarpb.SegmentLayout_ATTACHMENT_TABLE_OFFSET)
	AttachmentCount              = int(shmvarpb.SegmentLayout_ATTACHMENT_COUNT)
	AttachmentLength             = int(shmvarpb.SegmentLayout_ATTACHMENT_LENGTH)
	AttachmentIncarnationOffset  = int(shmvarpb.SegmentLayout_ATTACHMENT_INCARNATION_OFFSET)
	AttachmentPidOffset          = int(shmvarpb.SegmentLayout_ATTACHMENT_PID_OFFSET)
	AttachmentPidNamespaceOffset = int(shmvarpb.SegmentLayout_ATTACHMENT_PID_NAMESPACE_OFFSET)

	HeaderLength = int(shmvarpb.SegmentLayout_HEADER_LENGTH)

	SlotLengthOffset     = int(shmvarpb.SegmentLayout_SLOT_LENGTH_OFFSET)
	SlotCrcOffset        = int(shmvarpb.SegmentLayout_SLOT_CRC_OFFSET)
	SlotGenerationOffset = int(shmvarpb.SegmentLayout_SLOT_GENERATION_OFFSET)
	SlotHeaderLength     = int(shmvarpb.SegmentLayout_SLOT_HEADER_LENGTH)
	SlotAlignment        = int(shmvarpb.SegmentLayout_SLOT_ALIGNMENT)

	Magic              = uint32(shmvarpb.SegmentLayout_MAGIC)
	LayoutVersionMajor = uint32(shmvarpb.SegmentLayout_LAYOUT_VERSION_MAJOR)
	LayoutVersionMinor = uint32(shmvarpb.SegmentLayout_LAYOUT_VERSION_MINOR)
	LayoutVersion      = LayoutVersionMajor<<16 | LayoutVersionMinor
	KnownFlags         = uint32(shmvarpb.SegmentLayout_KNOWN_FLAGS)

	DefaultCapacity     = int(shmvarpb.SegmentLayout_DEFAULT_CAPACITY)
	MaxCapacity         = int(shmvarpb.SegmentLayout_MAX_CAPACITY)
	MaxDescriptorLength = int(shmvarpb.SegmentLayout_MAX_DESCRIPTOR_LENGTH)
	// MaxNestingDepth is how deep a value may nest, the top-level message
	// being at depth 0 (PROTOCOL.md, "Values").
	MaxNestingDepth = int(shmvarpb.SegmentLayout_MAX_NESTING_DEPTH)
)

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

func alignUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// geometry is where the regions of a segment lie.
type geometry struct {
	capacity         uint64
	descriptorOffset uint64
	descriptorLength uint64
	slot             [2]uint64
	segmentLength    uint64
}

func newGeometry(capacity, descriptorLength uint64) geometry {
	g := geometry{capacity: capacity, descriptorOffset: uint64(HeaderLength), descriptorLength: descriptorLength}
	slotLength := alignUp(uint64(SlotHeaderLength)+capacity, uint64(SlotAlignment))
	g.slot[0] = alignUp(g.descriptorOffset+descriptorLength, uint64(SlotAlignment))
	g.slot[1] = g.slot[0] + slotLength
	g.segmentLength = g.slot[1] + slotLength
	return g
}

// MaxSegmentLength is the size of the largest valid segment: MaxCapacity in
// each slot and a descriptor of MaxDescriptorLength. Open refuses anything
// larger, System V segment or file, before mapping it.
var MaxSegmentLength = newGeometry(uint64(MaxCapacity), uint64(MaxDescriptorLength)).segmentLength

// checkSegmentSize is step 1 of opening (PROTOCOL.md): the real size of a
// segment or file must hold the lines before the attachment table and be no
// larger than MaxSegmentLength.
func checkSegmentSize(key int32, size uint64) error {
	if size < uint64(AttachmentTableOffset) {
		return newError("open", key, ErrCorrupt, "segment too small: size=%d, header needs %d", size, AttachmentTableOffset)
	}
	if size > MaxSegmentLength {
		return newError("open", key, ErrCorrupt, "segment size=%d is larger than any shmvar segment (at most %d bytes)", size, MaxSegmentLength)
	}
	return nil
}

// notInitialised says why a segment or file still empty after the wait is refused.
func notInitialised(wait time.Duration) string {
	return fmt.Sprintf("magic and version are zero after %v (a creator died or this is not a shmvar segment)", wait)
}

// FormatVersion formats a layout version word as major.minor.
func FormatVersion(v uint32) string { return fmt.Sprintf("%d.%d", v>>16, v&0xffff) }

// readGeometry validates the identity line of mem, whose real size is
// len(mem) as IPC_STAT reports it, and returns the regions. Every offset and
// length is read once and checked with arithmetic that cannot overflow:
// each value is bounded by len(mem) or MaxCapacity before it is added.
func readGeometry(key int32, mem []byte, initWait time.Duration) (geometry, uint32, error) {
	fail := func(err error, format string, args ...any) (geometry, uint32, error) {
		return geometry{}, 0, newError("open", key, err, format, args...)
	}
	size := uint64(len(mem))
	// The lines before the attachment table are enough to tell the version:
	// a version-1 segment may be smaller than a version-2 header.
	if err := checkSegmentSize(key, size); err != nil {
		return geometry{}, 0, err
	}
	// The creator stores the version word last; wait briefly for a segment
	// that is still being created.
	version := load32(mem, LayoutVersionOffset)
	for deadline := time.Now().Add(initWait); version == 0 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
		version = load32(mem, LayoutVersionOffset)
	}
	magic := le.Uint32(mem[MagicOffset:])
	if magic != Magic {
		if magic == 0 && version == 0 {
			return fail(ErrNotInitialised, "%s", notInitialised(initWait))
		}
		return fail(ErrNotShmvar, "magic=0x%08x, want 0x%08x", magic, Magic)
	}
	if version == 0 {
		return fail(ErrNotInitialised, "version is zero after %v (creator died before finishing)", initWait)
	}
	if version>>16 != LayoutVersionMajor {
		return fail(ErrLayoutVersion, "app=%s segment=%s", FormatVersion(LayoutVersion), FormatVersion(version))
	}
	if unknown := le.Uint32(mem[FlagsOffset:]) &^ KnownFlags; unknown != 0 {
		return fail(ErrLayoutVersion, "segment uses feature flags 0x%08x that this peer does not know (app=%s knows 0x%08x)",
			unknown, FormatVersion(LayoutVersion), KnownFlags)
	}
	if h := le.Uint32(mem[HeaderLengthOffset:]); h != uint32(HeaderLength) {
		return fail(ErrCorrupt, "header length=%d, want %d", h, HeaderLength)
	}
	g := geometry{
		capacity:         le.Uint64(mem[CapacityOffset:]),
		descriptorOffset: le.Uint64(mem[DescriptorOffsetOffset:]),
		descriptorLength: le.Uint64(mem[DescriptorLengthOffset:]),
		slot:             [2]uint64{le.Uint64(mem[Slot0OffsetOffset:]), le.Uint64(mem[Slot1OffsetOffset:])},
		segmentLength:    le.Uint64(mem[SegmentLengthOffset:]),
	}
	switch {
	case g.capacity > uint64(MaxCapacity):
		return fail(ErrCorrupt, "capacity=%d exceeds maximum %d", g.capacity, MaxCapacity)
	case g.segmentLength > size:
		return fail(ErrCorrupt, "header claims segment length=%d, real size=%d", g.segmentLength, size)
	case g.descriptorOffset != uint64(HeaderLength):
		return fail(ErrCorrupt, "descriptor offset=%d, want %d", g.descriptorOffset, HeaderLength)
	case g.descriptorLength == 0 || g.descriptorLength > uint64(MaxDescriptorLength):
		return fail(ErrCorrupt, "descriptor length=%d outside 1..%d", g.descriptorLength, MaxDescriptorLength)
	case g.descriptorOffset+g.descriptorLength > size:
		return fail(ErrCorrupt, "descriptor [%d,+%d) outside segment size=%d", g.descriptorOffset, g.descriptorLength, size)
	}
	for i, off := range g.slot {
		if off%uint64(SlotAlignment) != 0 || off < g.descriptorOffset+g.descriptorLength ||
			off > size || size-off < uint64(SlotHeaderLength)+g.capacity {
			return fail(ErrCorrupt, "slot %d offset=%d (capacity=%d) outside segment size=%d or overlapping the descriptor", i, off, g.capacity, size)
		}
	}
	lo, hi := g.slot[0], g.slot[1]
	if lo > hi {
		lo, hi = hi, lo
	}
	if hi-lo < uint64(SlotHeaderLength)+g.capacity {
		return fail(ErrCorrupt, "slots at %d and %d overlap (capacity=%d)", g.slot[0], g.slot[1], g.capacity)
	}
	return g, version, nil
}

// readDescriptor copies, decodes and checks the SegmentDescriptor, then
// resolves the payload's message type from the stored schema.
func readDescriptor(key int32, mem []byte, g geometry, version uint32) (*shmvarpb.SegmentDescriptor, protoreflect.MessageType, error) {
	raw := append([]byte(nil), mem[g.descriptorOffset:g.descriptorOffset+g.descriptorLength]...)
	if want := le.Uint32(mem[DescriptorCrcOffset:]); crc32c(raw) != want {
		return nil, nil, newError("open", key, ErrCorrupt, "descriptor CRC32C mismatch")
	}
	d := &shmvarpb.SegmentDescriptor{}
	if err := proto.Unmarshal(raw, d); err != nil {
		return nil, nil, newError("open", key, ErrCorrupt, "descriptor does not decode: %v", err)
	}
	if d.GetLayoutVersion() != version {
		return nil, nil, newError("open", key, ErrCorrupt, "descriptor layout version=%s, header=%s", FormatVersion(d.GetLayoutVersion()), FormatVersion(version))
	}
	if d.GetCapacity() != g.capacity {
		return nil, nil, newError("open", key, ErrCorrupt, "descriptor capacity=%d, header=%d", d.GetCapacity(), g.capacity)
	}
	mt, err := messageTypeFromSchema(d)
	if err != nil {
		return nil, nil, newError("open", key, ErrCorrupt, "%v", err)
	}
	return d, mt, nil
}

func messageTypeFromSchema(d *shmvarpb.SegmentDescriptor) (mt protoreflect.MessageType, err error) {
	// The schema is untrusted input handed to a third-party builder: turn
	// any panic of its into a validation error rather than crash the peer.
	defer func() {
		if r := recover(); r != nil {
			mt, err = nil, fmt.Errorf("schema is not valid: %v", r)
		}
	}()
	set := &descriptorpb.FileDescriptorSet{}
	if err := proto.Unmarshal(d.GetSchema(), set); err != nil {
		return nil, fmt.Errorf("schema does not decode: %v", err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, fmt.Errorf("schema is not valid: %v", err)
	}
	if err := checkWellKnownTypes(files); err != nil {
		return nil, err
	}
	desc, err := files.FindDescriptorByName(protoreflect.FullName(d.GetMessageType()))
	if err != nil {
		return nil, fmt.Errorf("schema has no message %q", d.GetMessageType())
	}
	md, ok := desc.(protoreflect.MessageDescriptor)
	if !ok {
		return nil, fmt.Errorf("%q is not a message", d.GetMessageType())
	}
	return dynamicpb.NewMessageType(md), nil
}

// wellKnownFiles define the types that JSON and text format (protojson,
// prototext, Java's JsonFormat and TextFormat) handle by full name, assuming
// their fields: a schema must not redefine them (PROTOCOL.md, "Values").
var wellKnownFiles = []protoreflect.FileDescriptor{
	anypb.File_google_protobuf_any_proto, durationpb.File_google_protobuf_duration_proto,
	emptypb.File_google_protobuf_empty_proto, fieldmaskpb.File_google_protobuf_field_mask_proto,
	structpb.File_google_protobuf_struct_proto, timestamppb.File_google_protobuf_timestamp_proto,
	wrapperspb.File_google_protobuf_wrappers_proto,
}

// checkWellKnownTypes refuses a schema that defines a message or enum under
// the name of a well-known type with other fields, oneofs or values: the
// formatters would dereference fields that are not there.
func checkWellKnownTypes(files *protoregistry.Files) error {
	for _, wk := range wellKnownFiles {
		for i := 0; i < wk.Messages().Len(); i++ {
			want := wk.Messages().Get(i)
			if d, err := files.FindDescriptorByName(want.FullName()); err == nil && !sameMessage(d, want) {
				return fmt.Errorf("schema redefines well-known type %s: it differs from %s", want.FullName(), wk.Path())
			}
		}
		for i := 0; i < wk.Enums().Len(); i++ {
			want := wk.Enums().Get(i)
			if d, err := files.FindDescriptorByName(want.FullName()); err == nil && !sameEnum(d, want) {
				return fmt.Errorf("schema redefines well-known type %s: it differs from %s", want.FullName(), wk.Path())
			}
		}
	}
	return nil
}

// sameMessage reports whether d is a message with want's fields (number,
// name, kind, cardinality, type, oneof) and nested messages.
func sameMessage(d protoreflect.Descriptor, want protoreflect.MessageDescriptor) bool {
	_, isMessage := d.(protoreflect.MessageDescriptor)
	_, isEnum := d.(protoreflect.EnumDescriptor)
	if !isMessage {
		return !isEnum // only messages and enums are formatted by name
	}
	got := d.(protoreflect.MessageDescriptor)
	if got.Fields().Len() != want.Fields().Len() || got.Messages().Len() != want.Messages().Len() {
		return false
	}
	for i := 0; i < want.Fields().Len(); i++ {
		w := want.Fields().Get(i)
		g := got.Fields().ByNumber(w.Number())
		if g == nil || g.Name() != w.Name() || g.Kind() != w.Kind() || g.Cardinality() != w.Cardinality() ||
			(w.Message() != nil && g.Message().FullName() != w.Message().FullName()) ||
			(w.Enum() != nil && g.Enum().FullName() != w.Enum().FullName()) ||
			(g.ContainingOneof() == nil) != (w.ContainingOneof() == nil) ||
			(w.ContainingOneof() != nil && g.ContainingOneof().Name() != w.ContainingOneof().Name()) {
			return false
		}
	}
	for i := 0; i < want.Messages().Len(); i++ {
		w := want.Messages().Get(i)
		if g := got.Messages().ByName(w.Name()); g == nil || !sameMessage(g, w) {
			return false
		}
	}
	return true
}

// sameEnum reports whether d is an enum with want's values.
func sameEnum(d protoreflect.Descriptor, want protoreflect.EnumDescriptor) bool {
	_, isMessage := d.(protoreflect.MessageDescriptor)
	got, isEnum := d.(protoreflect.EnumDescriptor)
	if !isEnum {
		return !isMessage
	}
	if got.Values().Len() != want.Values().Len() {
		return false
	}
	for i := 0; i < want.Values().Len(); i++ {
		w := want.Values().Get(i)
		if g := got.Values().ByNumber(w.Number()); g == nil || g.Name() != w.Name() {
			return false
		}
	}
	return true
}

// schemaOf returns the encoded FileDescriptorSet of md's file and everything
// it imports, dependencies first.
func schemaOf(md protoreflect.MessageDescriptor) ([]byte, error) {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		imports := fd.Imports()
		for i := 0; i < imports.Len(); i++ {
			add(imports.Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(md.ParentFile())
	return proto.MarshalOptions{Deterministic: true}.Marshal(set)
}
