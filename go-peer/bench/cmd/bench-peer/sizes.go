//go:build linux && (amd64 || arm64)

package main

import (
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"runtime"
	"sort"
	"time"

	"github.com/shmvar/shmvar/go-peer/bench/benchpb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

// The sizes of the size benchmarks: a small value, a page, a large config,
// and about as large as the library is meant for. Bench.java has the same.
var sizeSteps = []int{64, 4 << 10, 256 << 10, 4 << 20}

// sizeResult is one row of make bench's size_scaling, Go's half; all times
// are medians of rounds, per operation.
type sizeResult struct {
	Bytes         int     `json:"bytes"`
	Shape         string  `json:"shape"`
	Encoded       int     `json:"encoded_bytes"`
	Update        float64 `json:"update_ns"`
	Mutate        float64 `json:"mutate_ns"`
	GetUncached   float64 `json:"get_uncached_ns"`
	Floor         float64 `json:"floor_ns"`
	Encode        float64 `json:"encode_ns"`
	Parse         float64 `json:"parse_ns"`
	Clone         float64 `json:"clone_ns"`
	UncachedReads int     `json:"readers"`
}

// sizes measures, for each shape and size, an uncontended Update and Mutate,
// a Get right after another attachment's commit (the value cache stale:
// copy, CRC32C and decode), and beside them the floor, copying the encoded
// bytes once and computing their CRC32C, and protobuf-go's own encode (into
// a reused buffer, as a commit does), decode and copy of the same message.
func sizes(quick bool) (any, error) {
	budget := 300 * time.Millisecond
	if quick {
		budget = 50 * time.Millisecond
	}
	var results []sizeResult
	for _, size := range sizeSteps {
		r, err := measureSize(blob(size), func(m *benchpb.Blob) { m.Seq++ }, "bytes", size, budget)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
		r, err = measureSize(table(size), func(m *benchpb.Table) { m.Seq++ }, "fields", size, budget)
		if err != nil {
			return nil, err
		}
		results = append(results, r)
	}
	return map[string]any{"size_scaling": results}, nil
}

// blob is a Blob of about size bytes encoded (never more).
func blob(size int) *benchpb.Blob {
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*131 + i>>8)
	}
	m := &benchpb.Blob{Seq: 1, Data: data}
	for proto.Size(m) > size {
		m.Data = m.Data[:len(m.Data)-(proto.Size(m)-size)]
	}
	return m
}

// table is a Table of about size bytes encoded (never more) in entries of
// about 30 bytes.
func table(size int) *benchpb.Table {
	m := &benchpb.Table{Seq: 1}
	total := proto.Size(m)
	for i := 0; ; i++ {
		e := &benchpb.Entry{Id: uint64(i + 1), Name: fmt.Sprintf("key-%06d", i), Value: int64(i) * 7919,
			Weight: float64(i) / 7, Enabled: i%2 == 0}
		n := proto.Size(e)
		n += 1 + len(protoVarint(uint64(n)))
		if total+n > size {
			return m
		}
		m.Entries = append(m.Entries, e)
		total += n
	}
}

func protoVarint(v uint64) []byte {
	var b []byte
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sink keeps the compiler from dropping work whose result is unused.
var sink uint64

func measureSize[T proto.Message](value T, bump func(T), shape string, size int, budget time.Duration) (sizeResult, error) {
	encoded, err := proto.Marshal(value)
	if err != nil {
		return sizeResult{}, err
	}
	r := sizeResult{Bytes: size, Shape: shape, Encoded: len(encoded)}
	w, err := createSized[T](len(encoded) + 4096)
	if err != nil {
		return r, err
	}
	defer w.Remove()
	if err := w.Set(value); err != nil {
		return r, err
	}
	// Each reader's cache goes stale at every commit; a round times one get
	// of each after one commit, so that the commit is not counted.
	r.UncachedReads = 16
	if size > 4<<10 {
		r.UncachedReads = 4
	}
	readers := make([]*shmvar.Var[T], r.UncachedReads)
	for i := range readers {
		if readers[i], err = shmvar.Open[T](w.Key(), shmvar.Options{ReadOnly: true}); err != nil {
			return r, err
		}
		defer readers[i].Close()
	}
	ops := max(1, 16<<10/size) // operations per timed round
	var failed error
	dst := make([]byte, len(encoded))
	r.Floor = perOp(budget, ops, func() {
		for range ops {
			copy(dst, encoded)
			sink += uint64(crc32.Checksum(dst, castagnoli))
		}
	})
	r.Update = perOp(budget, ops, func() {
		for range ops {
			if _, err := w.Update(func(m T) (T, error) { bump(m); return m, nil }); err != nil {
				failed = err
			}
		}
	})
	r.Mutate = perOp(budget, ops, func() {
		for range ops {
			if err := w.Mutate(func(m T) error { bump(m); return nil }); err != nil {
				failed = err
			}
		}
	})
	r.GetUncached = perRound(budget, func() float64 {
		if err := w.Mutate(func(m T) error { bump(m); return nil }); err != nil {
			failed = err
		}
		start := time.Now()
		for _, reader := range readers {
			if _, err := reader.Get(); err != nil {
				failed = err
			}
		}
		return float64(time.Since(start).Nanoseconds()) / float64(len(readers))
	})
	buf := make([]byte, 0, len(encoded)+64)
	r.Encode = perOp(budget, ops, func() {
		for range ops {
			bump(value)
			buf, _ = proto.MarshalOptions{}.MarshalAppend(buf[:0], value)
		}
	})
	r.Parse = perOp(budget, ops, func() {
		for range ops {
			m := value.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(encoded, m); err != nil {
				failed = err
			}
		}
	})
	// Update hands the caller the value it committed and keeps a copy as
	// the Var's cached value: that copy, alone.
	r.Clone = perOp(budget, ops, func() {
		for range ops {
			sink += uint64(len(proto.Clone(value).ProtoReflect().GetUnknown()))
		}
	})
	if failed != nil {
		return r, failed
	}
	// What the readers got is what the writer committed last.
	want, _ := w.Get()
	got, err := readers[0].Get()
	if err != nil || !proto.Equal(got, want) {
		return r, fmt.Errorf("%s %d: a reader got another value than the writer's (%v)", shape, size, err)
	}
	return r, nil
}

// perOp times rounds of ops operations for about budget, after a tenth of
// it unmeasured, and returns the median per operation.
func perOp(budget time.Duration, ops int, round func()) float64 {
	return perRound(budget, func() float64 {
		start := time.Now()
		round()
		return float64(time.Since(start).Nanoseconds()) / float64(ops)
	})
}

// perRound runs round for a tenth of budget unmeasured, then for budget (at
// least 5 rounds), and returns the median of what it returned.
func perRound(budget time.Duration, round func() float64) float64 {
	runtime.GC() // the garbage of the last measurement is not this one's
	for warm := time.Now().Add(budget / 10); time.Now().Before(warm); {
		round()
	}
	var samples []float64
	for end := time.Now().Add(budget); len(samples) < 5 || time.Now().Before(end); {
		samples = append(samples, round())
	}
	sort.Float64s(samples)
	return samples[len(samples)/2]
}

// createSized creates a variable of T with room for capacity bytes under a
// free key of make bench's range (0x5c......); the caller removes it.
func createSized[T proto.Message](capacity int) (*shmvar.Var[T], error) {
	for {
		v, err := shmvar.Create[T](uint32(0x5c000000|rand.IntN(0x1000000)), shmvar.Options{Capacity: capacity})
		if errors.Is(err, unix.EEXIST) {
			continue
		}
		return v, err
	}
}
