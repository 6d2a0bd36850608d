package shmvar_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
)

var le = binary.LittleEndian

// snapshot copies a segment's bytes, to prove a refused open left them alone.
func snapshot(t testing.TB, key uint32) []byte {
	var out []byte
	poke(t, key, func(mem []byte) { out = append(out, mem...) })
	return out
}

// TestRefusedOpensOfRealSegmentsChangeNothing opens real System V segments
// and checks that a refused open says one line and leaves their bytes
// alone: one refused by the size check System V opens make before attaching,
// one refused as soon as it is attached, one refused after the header
// passed. Which check refuses which image is the conformance corpus's
// business (conformance_test.go, proto/testdata/conformance), which both
// languages run: all zeros, version 1 and the rest are cases there.
func TestRefusedOpensOfRealSegmentsChangeNothing(t *testing.T) {
	valid := func(t *testing.T) uint32 {
		key := testKey(t)
		v := mustCreateCounter(t, key)
		v.Close()
		return key
	}
	cases := []struct {
		name    string
		segment func(t *testing.T) uint32
		want    error
		message string
	}{
		{"too small", func(t *testing.T) uint32 { return rawSegment(t, 100, nil) }, shmvar.ErrCorrupt, "segment too small: size=100"},
		{"random bytes", func(t *testing.T) uint32 {
			return rawSegment(t, 8192, func(mem []byte) { rand.New(rand.NewSource(1)).Read(mem) })
		}, shmvar.ErrNotShmvar, "magic=0x"},
		{"garbled descriptor", func(t *testing.T) uint32 {
			key := valid(t)
			poke(t, key, func(mem []byte) {
				for i := shmvar.HeaderLength; i < shmvar.HeaderLength+16; i++ {
					mem[i] = 0xff
				}
			})
			return key
		}, shmvar.ErrCorrupt, "descriptor CRC32C mismatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := c.segment(t)
			before := snapshot(t, key)
			_, err := shmvar.OpenAny(key, shmvar.Options{InitWait: 20 * time.Millisecond})
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("open: %v; want %v containing %q", err, c.want, c.message)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
			if !bytes.Equal(before, snapshot(t, key)) {
				t.Fatal("a refused open changed the segment's bytes")
			}
		})
	}
}

// TestCorruptSlotIsRefusedByEveryAttachmentAndBuiltOnByNone damages the
// active slot of a real segment under its writer: its own attachment (which
// may hold the value in its cache) re-reads it with GetEncoded, another
// attachment's Get refuses it, and an Update refuses to build on it and
// commits nothing. Which damage is refused how (length, CRC, slot
// generation, parse) is the conformance corpus's business: the slot-* cases.
func TestCorruptSlotIsRefusedByEveryAttachmentAndBuiltOnByNone(t *testing.T) {
	key := testKey(t)
	v := mustCreateCounter(t, key)
	v.Set(&examplespb.Counter{Value: 1})
	v.Set(&examplespb.Counter{Value: 2, LastWriter: "x"}) // generation 2: slot 0 active
	poke(t, key, func(mem []byte) {
		mem[le.Uint64(mem[shmvar.Slot0OffsetOffset:])+uint64(shmvar.SlotHeaderLength)] ^= 0x40
	})
	const message = "slot 0 CRC32C mismatch at generation 2"
	if _, err := v.GetEncoded(); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), message) {
		t.Fatalf("GetEncoded: %v; want ErrCorrupt containing %q", err, message)
	}
	r, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err = r.Get(); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), message) {
		t.Fatalf("Get: %v; want ErrCorrupt containing %q", err, message)
	}
	_, err = r.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
	if !errors.Is(err, shmvar.ErrCorrupt) {
		t.Fatalf("Update over a corrupt slot: %v", err)
	}
	if err := r.Mutate(func(c *examplespb.Counter) error { return nil }); !errors.Is(err, shmvar.ErrCorrupt) {
		t.Fatalf("Mutate over a corrupt slot: %v", err)
	}
	if g, _ := v.Generation(); g != 2 {
		t.Fatalf("generation moved to %d", g)
	}
}
