//go:build linux && (amd64 || arm64)

package main

import (
	"context"
	"net"
	"path/filepath"
	"testing"

	"github.com/shmvar/shmvar/go-peer/bench/benchpb"
	"github.com/shmvar/shmvar/go-peer/examplespb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
)

// The owner increments once per call and answers with the new value.
func TestOwnerShouldIncrementOncePerCall(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "grpc")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	benchpb.RegisterOwnerServer(s, &owner{})
	go s.Serve(l)
	defer s.Stop()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := benchpb.NewOwnerClient(conn)
	for want := int64(1); want <= 3; want++ {
		got, err := client.Update(context.Background(), &examplespb.Counter{LastWriter: "test"})
		if err != nil {
			t.Fatal(err)
		}
		if got.GetValue() != want || got.GetLastWriter() != "test" {
			t.Fatalf("call %d: got %v", want, got)
		}
	}
}

// The sized payloads come close to their size from below, as Bench.java's do.
func TestPayloadsShouldBeAboutTheirSize(t *testing.T) {
	for _, size := range sizeSteps {
		for _, m := range []proto.Message{blob(size), table(size)} {
			if n := proto.Size(m); n > size || n < size*3/4 {
				t.Errorf("%T of size %d encodes to %d bytes", m, size, n)
			}
		}
	}
}

// One sizes row, measured for real on a small value.
func TestMeasureSizeShouldFillEveryFigure(t *testing.T) {
	r, err := measureSize(blob(64), func(m *benchpb.Blob) { m.Seq++ }, "bytes", 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"update": r.Update, "mutate": r.Mutate, "get": r.GetUncached,
		"floor": r.Floor, "encode": r.Encode, "parse": r.Parse} {
		if v <= 0 {
			t.Errorf("%s = %v", name, v)
		}
	}
}
