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
func snapshot(t testing.TB, key int32) []byte {
	var out []byte
	poke(t, key, func(mem []byte) { out = append(out, mem...) })
	return out
}

// TestShouldRefuseHostileSegmentsWithTheCheckThatFailed opens real System V
// segments and checks that a refused open leaves their bytes alone. Which
// check refuses which image is the conformance corpus's business
// (conformance_test.go), which both languages run.
func TestShouldRefuseHostileSegmentsWithTheCheckThatFailed(t *testing.T) {
	valid := func(t *testing.T) int32 {
		key := testKey(t)
		v := mustCreateCounter(t, key)
		v.Close()
		return key
	}
	cases := []struct {
		name    string
		segment func(t *testing.T) int32
		want    error
		message string
	}{
		{"too small", func(t *testing.T) int32 { return rawSegment(t, 100, nil) }, shmvar.ErrCorrupt, "segment too small: size=100"},
		{"all zeros", func(t *testing.T) int32 { return rawSegment(t, 8192, nil) }, shmvar.ErrNotInitialised, "magic and version are zero"},
		{"random bytes", func(t *testing.T) int32 {
			return rawSegment(t, 8192, func(mem []byte) { rand.New(rand.NewSource(1)).Read(mem) })
		}, shmvar.ErrNotShmvar, "magic=0x"},
		{"small version 1 segment", func(t *testing.T) int32 {
			return rawSegment(t, 1024, func(mem []byte) {
				le.PutUint32(mem[shmvar.MagicOffset:], shmvar.Magic)
				le.PutUint32(mem[shmvar.LayoutVersionOffset:], 1<<16)
			})
		}, shmvar.ErrLayoutVersion, "app=2.0 segment=1.0"},
		{"garbled descriptor", func(t *testing.T) int32 {
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

func TestShouldRefuseCorruptSlots(t *testing.T) {
	cases := []struct {
		name    string
		damage  func(mem []byte, slot0 uint64)
		message string
	}{
		{"length above capacity", func(mem []byte, s uint64) { le.PutUint32(mem[s+uint64(shmvar.SlotLengthOffset):], 1<<31) }, "exceeds capacity"},
		{"flipped payload byte", func(mem []byte, s uint64) { mem[s+uint64(shmvar.SlotHeaderLength)] ^= 0x40 }, "CRC32C mismatch"},
		{"stale slot generation", func(mem []byte, s uint64) { le.PutUint64(mem[s+uint64(shmvar.SlotGenerationOffset):], 7) }, "slot 0 generation=7"},
		{"valid CRC over bytes that do not parse", func(mem []byte, s uint64) {
			payload := mem[s+uint64(shmvar.SlotHeaderLength):]
			payload[0] = 0xff // field 31, wire type 7: no such wire type
			le.PutUint32(mem[s+uint64(shmvar.SlotCrcOffset):], crc32c(payload[:le.Uint32(mem[s:])]))
		}, "does not decode"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := testKey(t)
			v := mustCreateCounter(t, key)
			v.Set(&examplespb.Counter{Value: 1})
			v.Set(&examplespb.Counter{Value: 2, LastWriter: "x"}) // generation 2: slot 0 active
			poke(t, key, func(mem []byte) { c.damage(mem, le.Uint64(mem[shmvar.Slot0OffsetOffset:])) })
			// The writer's own attachment may serve generation 2 from its
			// cache; GetEncoded and every other attachment re-read the slot.
			if _, err := v.GetEncoded(); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("GetEncoded: %v; want ErrCorrupt containing %q", err, c.message)
			}
			r, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err = r.Get(); !errors.Is(err, shmvar.ErrCorrupt) || !strings.Contains(err.Error(), c.message) {
				t.Fatalf("Get: %v; want ErrCorrupt containing %q", err, c.message)
			}
			// A writer refuses to build on a corrupt value too, and commits nothing.
			_, err = r.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) { return c, nil })
			if !errors.Is(err, shmvar.ErrCorrupt) {
				t.Fatalf("Update over a corrupt slot: %v", err)
			}
			if g, _ := v.Generation(); g != 2 {
				t.Fatalf("generation moved to %d", g)
			}
		})
	}
}
