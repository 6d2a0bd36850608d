package shmvar

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
)

// Differential fuzzing of the two peers' open and read paths: the corpus's
// valid images, mutated at random, are streamed to bin/go-peer's and
// bin/java-peer's conformance testees side by side (each started once), and
// the outcomes must agree: both read the same type and payload bytes, or
// both refuse with the same ErrorKind (messages may differ). A disagreement
// is written as a corpus-shaped ConformanceCase (with the Go outcome as the
// expected one) under a temp dir, and fails the test.
//
// SHMVAR_DIFF_CASES sets the number of cases (default 2,000),
// SHMVAR_DIFF_SEED the seed (default 1; "random" picks one); both are
// logged so that a run can be replayed. make fuzz-diff runs 100,000 cases
// with a random seed.

const (
	defaultDiffCases = 2000
	defaultDiffSeed  = 1
)

func TestDifferentialFuzz(t *testing.T) {
	cases := defaultDiffCases
	if s := os.Getenv("SHMVAR_DIFF_CASES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			t.Fatalf("SHMVAR_DIFF_CASES=%q is not a count", s)
		}
		cases = n
	}
	seed := int64(defaultDiffSeed)
	if s := os.Getenv("SHMVAR_DIFF_SEED"); s == "random" {
		seed = time.Now().UnixNano()
	} else if s != "" {
		n, err := strconv.ParseInt(s, 0, 64)
		if err != nil {
			t.Fatalf("SHMVAR_DIFF_SEED=%q is not a number", s)
		}
		seed = n
	}
	t.Logf("SHMVAR_DIFF_SEED=%d SHMVAR_DIFF_CASES=%d", seed, cases)

	root := corpusRoot(t)
	for _, built := range []string{"bin/go-peer", "target/java-peer.jar"} {
		if _, err := os.Stat(filepath.Join(root, built)); err != nil {
			t.Fatalf("%s is missing: run 'make build' (make test does) first", built)
		}
	}
	var seeds []*shmvarpb.ConformanceRequest
	for _, c := range readCorpus(t) {
		if c.GetValue() != nil { // the valid images (and their sizes and types)
			seeds = append(seeds, c.Request)
		}
	}

	dir := t.TempDir() // the testees write each image here and remove it
	goT := startTestee(t, filepath.Join(root, "bin", "go-peer"), dir)
	javaT := startTestee(t, filepath.Join(root, "bin", "java-peer"), dir)

	// The producer makes every request from the seed alone, so that a
	// replay with the same seed makes the same ones; the two writers stream
	// them while the comparing loop below reads the answers in order.
	rng := rand.New(rand.NewSource(seed))
	pending := make(chan *shmvarpb.ConformanceRequest, 64)
	toGo, toJava := make(chan []byte, 64), make(chan []byte, 64)
	go func() {
		defer close(pending)
		defer close(toGo)
		defer close(toJava)
		for i := 0; i < cases; i++ {
			req := mutateRequest(rng, seeds)
			b, _ := proto.Marshal(req)
			framed := append(binary.LittleEndian.AppendUint32(nil, uint32(len(b))), b...)
			pending <- req
			toGo <- framed
			toJava <- framed
		}
	}()
	go goT.feed(toGo)
	go javaT.feed(toJava)

	start := time.Now()
	disagreements, n := 0, 0
	var outDir string
	kinds := map[string]int{} // disagreements by kind, for the summary
	for req := range pending {
		g, gerr := goT.next()
		j, jerr := javaT.next()
		if gerr != nil || jerr != nil {
			t.Fatalf("case %d: a testee stopped: go: %v, java: %v; stderr go: %s java: %s; image: %s",
				n, gerr, jerr, goT.stderr.String(), javaT.stderr.String(), hexSummary(req.Image))
		}
		if why := diffOutcomes(g, j); why != "" {
			disagreements++
			kinds[why+" (go: "+refusalGist(g)+"; java: "+refusalGist(j)+")"]++
			if disagreements > 20 { // counted; the first 20 are written and shown
				n++
				continue
			}
			if outDir == "" {
				var err error
				if outDir, err = os.MkdirTemp("", "shmvar-diff-"); err != nil {
					t.Fatal(err)
				}
			}
			c := &shmvarpb.ConformanceCase{Name: fmt.Sprintf("diff-%d-%d", seed, n), Rule: "differential: " + why, Request: req}
			switch {
			case g.GetValue() != nil:
				c.Expected = &shmvarpb.ConformanceCase_Value{Value: g.GetValue()}
			case g.GetRefusal() != nil:
				c.Expected = &shmvarpb.ConformanceCase_Refusal{Refusal: g.GetRefusal()}
			}
			b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(c)
			path := filepath.Join(outDir, c.Name+".binpb")
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Errorf("case %d (type %q, size %d): %s\n  go:   %s\n  java: %s\n  case: %s\n  image: %s",
				n, req.MessageType, req.Size, why, outcome(g), outcome(j), path, hexSummary(req.Image))
		}
		n++
	}
	goT.close(t)
	javaT.close(t)
	// The line make fuzz-diff greps.
	t.Logf("cases=%d disagreements=%d seed=%d elapsed=%s", n, disagreements, seed, time.Since(start).Round(time.Millisecond))
	var summary []string
	for k, c := range kinds {
		summary = append(summary, fmt.Sprintf("%6d  %s", c, k))
	}
	sort.Sort(sort.Reverse(sort.StringSlice(summary)))
	for _, line := range summary {
		t.Logf("disagreements: %s", line)
	}
	if disagreements > 0 {
		t.Errorf("%d disagreements (cases written to %s); replay with SHMVAR_DIFF_SEED=%d SHMVAR_DIFF_CASES=%d",
			disagreements, outDir, seed, cases)
	}
}

// diffTestee is a conformance testee started once.
type diffTestee struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr bytes.Buffer
}

func startTestee(t *testing.T, command, dir string) *diffTestee {
	d := &diffTestee{cmd: exec.Command(command, "conformance", "--dir", dir)}
	var err error
	if d.stdin, err = d.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := d.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	d.stdout = bufio.NewReaderSize(out, 1<<16)
	d.cmd.Stderr = &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // a failed test still ends its testees
		d.stdin.Close()
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	return d
}

func (d *diffTestee) feed(requests <-chan []byte) {
	w := bufio.NewWriterSize(d.stdin, 1<<16)
	for b := range requests {
		if _, err := w.Write(b); err != nil {
			break
		}
		if len(requests) == 0 { // nothing queued: let the testee have it
			if w.Flush() != nil {
				break
			}
		}
	}
	w.Flush()
	d.stdin.Close()
	for range requests { // a testee that stopped: drain, the reader reports it
	}
}

func (d *diffTestee) next() (*shmvarpb.ConformanceResponse, error) {
	var n [4]byte
	if _, err := io.ReadFull(d.stdout, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, binary.LittleEndian.Uint32(n[:]))
	if _, err := io.ReadFull(d.stdout, b); err != nil {
		return nil, err
	}
	resp := new(shmvarpb.ConformanceResponse)
	return resp, proto.Unmarshal(b, resp)
}

func (d *diffTestee) close(t *testing.T) {
	if err := d.cmd.Wait(); err != nil {
		t.Errorf("%s: %v; stderr: %s", d.cmd.Path, err, d.stderr.String())
	}
}

// diffOutcomes says how two responses disagree, or "".
func diffOutcomes(g, j *shmvarpb.ConformanceResponse) string {
	switch {
	case g.GetRuntimeError() != "" || j.GetRuntimeError() != "":
		return "a testee failed to run the case"
	case (g.GetValue() != nil) != (j.GetValue() != nil):
		if g.GetValue() != nil {
			return "go accepts, java refuses"
		}
		return "java accepts, go refuses"
	case g.GetValue() != nil:
		if g.GetValue().MessageType != j.GetValue().MessageType {
			return "different message types"
		}
		if !bytes.Equal(g.GetValue().Payload, j.GetValue().Payload) {
			return "different payloads"
		}
	case g.GetRefusal().GetKind() != j.GetRefusal().GetKind():
		return "different error kinds"
	}
	return ""
}

// refusalGist is a response's outcome without the details: the refusal's
// kind and the first two parts of its message (after the path), or "value".
func refusalGist(r *shmvarpb.ConformanceResponse) string {
	switch {
	case r.GetValue() != nil:
		return "value"
	case r.GetRefusal() != nil:
		m := r.GetRefusal().Message
		if i := strings.Index(m, "conformance-"); i >= 0 {
			if j := strings.Index(m[i:], ": "); j >= 0 {
				m = m[i+j+2:]
			}
		}
		if parts := strings.SplitN(m, ": ", 3); len(parts) > 2 {
			m = parts[0] + ": " + parts[1]
		}
		return r.GetRefusal().Kind.String() + " " + m
	}
	return "runtime error"
}

func outcome(r *shmvarpb.ConformanceResponse) string {
	switch {
	case r.GetValue() != nil:
		p := r.GetValue().Payload
		if len(p) > 64 {
			return fmt.Sprintf("value %s (%d bytes) %x...", r.GetValue().MessageType, len(p), p[:64])
		}
		return fmt.Sprintf("value %s %x", r.GetValue().MessageType, p)
	case r.GetRefusal() != nil:
		return fmt.Sprintf("refused %v: %s", r.GetRefusal().Kind, r.GetRefusal().Message)
	}
	return "runtime error: " + r.GetRuntimeError()
}

// hexSummary shows an image's length and its header fields, and the bytes
// that matter beyond them in short.
func hexSummary(img []byte) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "len=%d", len(img))
	u32 := func(name string, off int) {
		if off+4 <= len(img) {
			fmt.Fprintf(&b, " %s=%#x", name, le.Uint32(img[off:]))
		}
	}
	u64 := func(name string, off int) {
		if off+8 <= len(img) {
			fmt.Fprintf(&b, " %s=%#x", name, le.Uint64(img[off:]))
		}
	}
	u32("magic", MagicOffset)
	u32("version", LayoutVersionOffset)
	u32("flags", FlagsOffset)
	u32("header", HeaderLengthOffset)
	u64("capacity", CapacityOffset)
	u64("segment", SegmentLengthOffset)
	u64("descOff", DescriptorOffsetOffset)
	u64("descLen", DescriptorLengthOffset)
	u32("descCrc", DescriptorCrcOffset)
	u64("slot0", Slot0OffsetOffset)
	u64("slot1", Slot1OffsetOffset)
	u64("gen", GenerationOffset)
	for i, name := range []string{"slot0", "slot1"} {
		off := Slot0OffsetOffset + 8*i
		if off+8 > len(img) {
			continue
		}
		s := le.Uint64(img[off:])
		if s > uint64(len(img)) || uint64(len(img))-s < uint64(SlotHeaderLength) {
			continue
		}
		h := img[s:]
		n := le.Uint32(h[SlotLengthOffset:])
		payload := h[SlotHeaderLength:]
		if uint64(n) < uint64(len(payload)) {
			payload = payload[:n]
		}
		if len(payload) > 64 {
			payload = payload[:64]
		}
		fmt.Fprintf(&b, " %s[len=%d crc=%#x gen=%d payload=%s]", name, n, le.Uint32(h[SlotCrcOffset:]),
			le.Uint64(h[SlotGenerationOffset:]), hex.EncodeToString(payload))
	}
	return b.String()
}

// mutateRequest copies one of the valid seeds and mutates it 1 to 4 times.
func mutateRequest(rng *rand.Rand, seeds []*shmvarpb.ConformanceRequest) *shmvarpb.ConformanceRequest {
	base := seeds[rng.Intn(len(seeds))]
	req := &shmvarpb.ConformanceRequest{Image: append([]byte(nil), base.Image...), Size: base.Size, MessageType: base.MessageType}
	for k := 1 + rng.Intn(4); k > 0; k-- {
		req.Image = mutateImage(rng, req.Image, seeds)
	}
	if req.Size != 0 && rng.Intn(4) == 0 {
		req.Size = 0
	}
	switch rng.Intn(8) {
	case 0:
		req.MessageType = "shmvar.examples.v1.Counter"
	case 1:
		req.MessageType = "shmvar.examples.v1.AllTypes"
	case 2:
		req.MessageType = ""
	}
	return req
}

// The header fields, and their widths, for the boundary-value mutation.
var diffHeaderFields = []struct{ off, width int }{
	{MagicOffset, 4}, {LayoutVersionOffset, 4}, {HeaderLengthOffset, 4}, {FlagsOffset, 4},
	{CapacityOffset, 8}, {DescriptorOffsetOffset, 8}, {DescriptorLengthOffset, 8},
	{Slot0OffsetOffset, 8}, {Slot1OffsetOffset, 8}, {SegmentLengthOffset, 8},
	{DescriptorCrcOffset, 4}, {GenerationOffset, 8},
}

// region picks a byte range to mutate: mostly the header, then the
// descriptor, the slot headers and the payloads.
func diffRegion(rng *rand.Rand, img []byte) (int, int) {
	clamp := func(lo, hi uint64) (int, int) {
		n := uint64(len(img))
		if lo > n {
			lo = n
		}
		if hi > n || hi < lo {
			hi = n
		}
		return int(lo), int(hi)
	}
	field := func(off int) uint64 {
		if off+8 <= len(img) {
			return le.Uint64(img[off:])
		}
		return 0
	}
	switch r := rng.Intn(10); {
	case r < 4:
		return clamp(0, uint64(HeaderLength))
	case r < 6:
		d := uint64(HeaderLength)
		return clamp(d, d+field(DescriptorLengthOffset))
	case r < 8:
		s := field(Slot0OffsetOffset + 8*rng.Intn(2))
		return clamp(s, s+uint64(SlotHeaderLength))
	default:
		s := field(Slot0OffsetOffset+8*rng.Intn(2)) + uint64(SlotHeaderLength)
		return clamp(s, s+uint64(corpusCapacity))
	}
}

func mutateImage(rng *rand.Rand, img []byte, seeds []*shmvarpb.ConformanceRequest) []byte {
	pick := func() int {
		lo, hi := diffRegion(rng, img)
		if hi <= lo {
			if len(img) == 0 {
				return -1
			}
			return rng.Intn(len(img))
		}
		return lo + rng.Intn(hi-lo)
	}
	switch rng.Intn(12) {
	case 0, 1, 2: // flip a bit
		if i := pick(); i >= 0 {
			img[i] ^= 1 << rng.Intn(8)
		}
	case 3, 4: // set a byte
		if i := pick(); i >= 0 {
			img[i] = []byte{0, 1, 0x7f, 0x80, 0xff, byte(rng.Intn(256))}[rng.Intn(6)]
		}
	case 5, 6: // a header field, or a slot's length, to a boundary value
		capacity := uint64(corpusCapacity)
		if CapacityOffset+8 <= len(img) {
			capacity = le.Uint64(img[CapacityOffset:])
		}
		values := []uint64{0, 1, 7, 8, 63, 64, 511, 512, 513, uint64(HeaderLength), uint64(HeaderLength) + 1,
			capacity, capacity - 1, capacity + 1, uint64(len(img)), uint64(len(img)) + 1, uint64(len(img)) - 1,
			uint64(MaxCapacity), uint64(MaxCapacity) + 1, uint64(MaxDescriptorLength), uint64(MaxDescriptorLength) + 1,
			MaxSegmentLength, MaxSegmentLength + 1, 1 << 31, 1<<32 - 1, 1 << 32, 1 << 63, 1<<64 - 1, 1<<64 - 64}
		v := values[rng.Intn(len(values))]
		if rng.Intn(3) == 0 { // a slot's length or generation
			s := uint64(0)
			if Slot0OffsetOffset+16 <= len(img) {
				s = le.Uint64(img[Slot0OffsetOffset+8*rng.Intn(2):])
			}
			if s <= uint64(len(img)) && uint64(len(img))-s >= uint64(SlotHeaderLength) {
				if rng.Intn(2) == 0 {
					le.PutUint32(img[s+uint64(SlotLengthOffset):], uint32(v))
				} else {
					le.PutUint64(img[s+uint64(SlotGenerationOffset):], v)
				}
			}
			break
		}
		f := diffHeaderFields[rng.Intn(len(diffHeaderFields))]
		if f.off+f.width <= len(img) {
			if f.width == 4 {
				le.PutUint32(img[f.off:], uint32(v))
			} else {
				le.PutUint64(img[f.off:], v)
			}
		}
	case 7: // truncate, mostly at a boundary
		cuts := []int{0, 1, 511, 512, 513, HeaderLength - 1, HeaderLength, HeaderLength + 1, len(img) - 1, rng.Intn(len(img) + 1)}
		for _, off := range []int{Slot0OffsetOffset, Slot1OffsetOffset} {
			if off+8 <= len(img) {
				s := int(le.Uint64(img[off:]) & (1<<40 - 1))
				cuts = append(cuts, s, s+SlotHeaderLength, s+SlotHeaderLength+corpusCapacity-1)
			}
		}
		if c := cuts[rng.Intn(len(cuts))]; c >= 0 && c < len(img) {
			img = img[:c]
		}
	case 8: // extend, with zeros or random bytes
		ext := make([]byte, []int{1, 8, 4096, rng.Intn(8192)}[rng.Intn(4)])
		if rng.Intn(2) == 0 {
			rng.Read(ext)
		}
		img = append(img, ext...)
	case 9: // splice two images
		other := seeds[rng.Intn(len(seeds))].Image
		cut := rng.Intn(min(len(img), len(other)) + 1)
		if rng.Intn(2) == 0 {
			cut = []int{512, HeaderLength, HeaderLength + 64}[rng.Intn(3)]
			cut = min(cut, len(img), len(other))
		}
		img = append(img[:cut:cut], other[cut:]...)
	case 10: // mutate the descriptor and forge its CRC: get past step 5's CRC
		if HeaderLength > len(img) || DescriptorLengthOffset+8 > len(img) {
			break
		}
		n := le.Uint64(img[DescriptorLengthOffset:])
		if n == 0 || n > uint64(len(img)-HeaderLength) {
			break
		}
		d := img[HeaderLength : uint64(HeaderLength)+n]
		for k := 1 + rng.Intn(3); k > 0; k-- {
			i := rng.Intn(len(d))
			if rng.Intn(2) == 0 {
				d[i] ^= 1 << rng.Intn(8)
			} else {
				d[i] = byte(rng.Intn(256))
			}
		}
		le.PutUint32(img[DescriptorCrcOffset:], crc32c(d))
	case 11: // mutate the active slot's payload and forge its CRC: reach the decode
		if GenerationOffset+8 > len(img) || Slot1OffsetOffset+8 > len(img) {
			break
		}
		g := le.Uint64(img[GenerationOffset:])
		s := le.Uint64(img[Slot0OffsetOffset+8*int(g&1):])
		if s > uint64(len(img)) || uint64(len(img))-s < uint64(SlotHeaderLength) {
			break
		}
		h := img[s:]
		n := uint64(le.Uint32(h[SlotLengthOffset:]))
		if n > uint64(len(h)-SlotHeaderLength) {
			break
		}
		p := h[SlotHeaderLength : uint64(SlotHeaderLength)+n]
		if len(p) > 0 {
			for k := 1 + rng.Intn(3); k > 0; k-- {
				i := rng.Intn(len(p))
				if rng.Intn(2) == 0 {
					p[i] ^= 1 << rng.Intn(8)
				} else {
					p[i] = byte(rng.Intn(256))
				}
			}
		}
		le.PutUint32(h[SlotCrcOffset:], crc32c(p))
	}
	return img
}
