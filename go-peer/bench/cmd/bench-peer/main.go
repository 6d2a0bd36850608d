//go:build linux && (amd64 || arm64)

// Command bench-peer is the Go half of make bench, which the Java benchmark
// driver (io.shmvar.Bench) starts. Each mode prints one JSON line.
//
//	bench-peer floor   --key K --rounds N        answer a raw atomic word (no protobuf)
//	bench-peer uds     --socket PATH             own a Counter; answer each request over a Unix socket
//	bench-peer grpc    --socket PATH             own a Counter; serve the gRPC Owner service over a Unix socket until stdin closes
//	bench-peer contend --key K --duration D      increment the shared Counter, recording acquire latency
//	bench-peer read    --key K --start T --duration D   get the shared Counter as fast as it can from T (Unix ns) for D
//	bench-peer idle    --key K --duration D      park in AwaitChange, then report the CPU it used
//	bench-peer sizes   [--quick]                 update and uncached get of 64 B .. 4 MiB values, beside copy+CRC32C
//
// The shared-memory ping-pong uses go-peer pong. This command lives in its
// own module (go-peer/bench) so that gRPC and the histograms stay out of the
// library's requirements.
package main

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench-peer floor|uds|grpc|contend|read|idle|sizes [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	keyText := fs.String("key", "", "")
	rounds := fs.Int("rounds", 0, "")
	socket := fs.String("socket", "", "")
	duration := fs.Duration("duration", time.Second, "")
	wait := fs.String("wait", "park", "")
	start := fs.Int64("start", 0, "")
	quick := fs.Bool("quick", false, "")
	fs.Parse(os.Args[2:])
	var key int32
	if *keyText != "" {
		k, err := strconv.ParseInt(*keyText, 0, 64)
		if err != nil {
			fail(err)
		}
		key = int32(uint32(k))
	}
	strategy := shmvar.SpinThenPark
	if *wait == "spin" {
		strategy = shmvar.Spin
	}
	var result any
	var err error
	switch os.Args[1] {
	case "floor":
		result, err = floor(key, *rounds)
	case "uds":
		result, err = serveUDS(*socket)
	case "grpc":
		result, err = serveGRPC(*socket)
	case "read":
		result, err = read(key, time.Unix(0, *start), *duration)
	case "sizes":
		result, err = sizes(*quick)
	case "contend":
		result, err = contend(key, *duration, strategy)
	case "idle":
		result, err = idle(key, *duration)
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	json.NewEncoder(os.Stdout).Encode(result)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "bench-peer: %v\n", err)
	os.Exit(1)
}

// floor answers a raw 64-bit word at offset 0 of a plain segment: it waits
// for an odd value and stores the next even one. Both sides spin.
func floor(key int32, rounds int) (any, error) {
	id, err := unix.SysvShmGet(int(key), 0, 0)
	if err != nil {
		return nil, err
	}
	mem, err := unix.SysvShmAttach(id, 0, 0)
	if err != nil {
		return nil, err
	}
	defer unix.SysvShmDetach(mem)
	word := (*uint64)(unsafe.Pointer(&mem[0]))
	for i := 0; i < rounds; i++ {
		want := uint64(2*i + 1)
		for deadline := time.Now().Add(30 * time.Second); atomic.LoadUint64(word) != want; {
			if i == 0 && time.Now().After(deadline) {
				return nil, errors.New("no ping in 30s")
			}
		}
		atomic.StoreUint64(word, want+1)
	}
	return map[string]any{"rounds": rounds}, nil
}

// serveUDS owns a Counter and answers each request, a length-prefixed
// encoded Counter, with the counter incremented, until the client hangs up.
func serveUDS(path string) (any, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	fmt.Println(`{"listening":true}`)
	conn, err := l.Accept()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	owned := &examplespb.Counter{LastWriter: "go"}
	var header [4]byte
	buf := make([]byte, 0, 256)
	out := make([]byte, 4, 256)
	requests := 0
	for {
		if _, err := io.ReadFull(conn, header[:]); err != nil {
			return map[string]any{"requests": requests}, nil
		}
		n := binary.LittleEndian.Uint32(header[:])
		if n > 1<<20 {
			return nil, fmt.Errorf("request of %d bytes", n)
		}
		buf = buf[:n]
		if _, err := io.ReadFull(conn, buf); err != nil {
			return nil, err
		}
		request := &examplespb.Counter{}
		if err := proto.Unmarshal(buf, request); err != nil {
			return nil, err
		}
		owned.Value++
		out, _ = proto.MarshalOptions{}.MarshalAppend(out[:4], owned)
		binary.LittleEndian.PutUint32(out, uint32(len(out)-4))
		if _, err := conn.Write(out); err != nil {
			return nil, err
		}
		requests++
	}
}

// contend increments the shared Counter for d, recording the acquire
// latency: from calling Update until the update function runs.
func contend(key int32, d time.Duration, strategy shmvar.WaitStrategy) (any, error) {
	v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{Wait: strategy})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	h := hdrhistogram.New(1, int64(10*time.Second), 3)
	// Start together with the Java side: it commits generation 1 to say go.
	if _, err := v.AwaitChange(0, 30*time.Second); err != nil {
		return nil, err
	}
	count := 0
	var started time.Time
	for start := time.Now(); time.Since(start) < d; count++ {
		started = time.Now()
		if _, err := v.Update(func(c *examplespb.Counter) (*examplespb.Counter, error) {
			h.RecordValue(int64(time.Since(started)))
			c.Value++
			return c, nil
		}); err != nil {
			return nil, err
		}
	}
	encoded, err := h.Encode(hdrhistogram.V2CompressedEncodingCookieBase)
	if err != nil {
		return nil, err
	}
	return map[string]any{"count": count, "seconds": d.Seconds(), "histogram": string(encoded)}, nil
}

// idle parks in AwaitChange for d while nothing is committed and reports
// the CPU time this process used meanwhile, from getrusage.
func idle(key int32, d time.Duration) (any, error) {
	v, err := shmvar.Open[*examplespb.Counter](key, shmvar.Options{})
	if err != nil {
		return nil, err
	}
	defer v.Close()
	g, _ := v.Generation()
	var before, after unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &before)
	start := time.Now()
	for time.Since(start) < d {
		if _, err := v.AwaitChange(g, d-time.Since(start)); err != nil && !errors.Is(err, shmvar.ErrTimeout) {
			return nil, err
		}
	}
	wall := time.Since(start)
	unix.Getrusage(unix.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	return map[string]any{"cpu_percent": 100 * cpu.Seconds() / wall.Seconds(), "seconds": wall.Seconds()}, nil
}
