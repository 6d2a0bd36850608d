package shmvar

import (
	"errors"
	"testing"
	"time"
	"unsafe"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"google.golang.org/protobuf/proto"
)

// image builds a valid segment image holding value, as Create would.
func image(t testing.TB, value proto.Message) []byte {
	_, raw, geo, err := describe(1, value.ProtoReflect().Type(), 256)
	if err != nil {
		t.Fatal(err)
	}
	mem := alignedCopy(make([]byte, geo.segmentLength))
	initialise(mem, geo, raw)
	v, err := newVar[proto.Message](memoryMapping{mem: mem}, 1, Options{})
	if err != nil {
		t.Fatal(err)
	}
	v.lk.index, v.lk.me = 0, 1 // as if it had claimed entry 0; image memory has no kernel object
	if err := v.Set(value); err != nil {
		t.Fatal(err)
	}
	return mem
}

// alignedCopy copies b into 8-byte aligned memory, as an attached segment is.
func alignedCopy(b []byte) []byte {
	words := make([]uint64, (len(b)+7)/8+1)
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), len(b))
	copy(mem, b)
	return mem
}

// FuzzOpenAndGet feeds arbitrary segment images to the validation, the
// lock-free read and a locked update. Only typed errors may come out: no
// panic, no out-of-bounds access, no hang, no unbounded allocation.
func FuzzOpenAndGet(f *testing.F) {
	f.Add(image(f, &examplespb.Counter{Value: 42, LastWriter: "seed"}))
	f.Add(image(f, &examplespb.AllTypes{FString: "ü", RInt64: []int64{1, 2, 3}, Child: &examplespb.AllTypes{FBool: true}}))
	f.Add(make([]byte, 4096))
	f.Add([]byte("SVAR"))
	truncated := image(f, &examplespb.Counter{Value: 1})
	f.Add(truncated[:len(truncated)/2])
	sentinels := []error{ErrNotShmvar, ErrNotInitialised, ErrLayoutVersion, ErrTypeMismatch, ErrCorrupt,
		ErrTooLarge, ErrTimeout, ErrBusy, ErrInvalidArgument, ErrLockLost}
	typed := func(t *testing.T, err error) {
		var e *Error
		if !errors.As(err, &e) {
			t.Fatalf("untyped error %T: %v", err, err)
		}
		for _, s := range sentinels {
			if errors.Is(err, s) {
				return
			}
		}
		t.Fatalf("error with no sentinel: %v", err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		watchdog := time.AfterFunc(5*time.Second, func() { panic("one input took over 5s") })
		defer watchdog.Stop()
		mem := alignedCopy(data)
		v, err := newVar[proto.Message](memoryMapping{mem: mem}, 1, Options{InitWait: time.Nanosecond})
		if err != nil {
			typed(t, err)
			return
		}
		if _, err := v.Get(); err != nil {
			typed(t, err)
		}
		store64(mem, LockWordOffset, 0) // a hostile lock word would only make us wait
		v.lk.index, v.lk.me = 0, 1      // as if it had claimed entry 0; image memory has no kernel object
		_, err = v.TryUpdate(time.Millisecond, func(m proto.Message) (proto.Message, error) { return m, nil })
		if err != nil {
			typed(t, err)
		}
	})
}
