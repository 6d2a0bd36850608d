//go:build linux && (amd64 || arm64)

package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"github.com/shmvar/shmvar/go-peer/bench/benchpb"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"google.golang.org/grpc"
)

// owner is what a team would write instead of sharing memory: the Go
// process owns the Counter, and a JVM increments it with a unary call.
type owner struct {
	benchpb.UnimplementedOwnerServer
	mu       sync.Mutex
	value    int64
	requests int64
}

func (o *owner) Update(_ context.Context, req *examplespb.Counter) (*examplespb.Counter, error) {
	o.mu.Lock()
	o.value++
	o.requests++
	out := &examplespb.Counter{Value: o.value, LastWriter: req.GetLastWriter()}
	o.mu.Unlock()
	return out, nil
}

// serveGRPC serves Owner on a Unix socket at path with grpc-go's defaults
// until its standard input closes, then reports how many requests it served.
func serveGRPC(path string) (any, error) {
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	s := grpc.NewServer()
	o := &owner{}
	benchpb.RegisterOwnerServer(s, o)
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	fmt.Println(`{"listening":true}`)
	io.Copy(io.Discard, os.Stdin) // the Java side closes it when done
	s.Stop()
	if err := <-served; err != nil && err != grpc.ErrServerStopped {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return map[string]any{"requests": o.requests, "value": o.value}, nil
}
