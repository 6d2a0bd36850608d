//go:build linux && (amd64 || arm64)

package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"google.golang.org/protobuf/proto"
)

// cmdConformance is the hidden `conformance` subcommand: the testee of the
// conformance corpus (proto/shmvar/v1/conformance.proto). It reads
// length-prefixed ConformanceRequests on stdin until EOF and answers each with
// a ConformanceResponse on stdout, opening each image as a mapped file in
// --dir with the library's real open and read.
func cmdConformance(args []string, stdout io.Writer) error {
	fs := newFlags("conformance")
	dir := fs.String("dir", os.TempDir(), "")
	if err := parse(fs, args, 0); err != nil {
		return err
	}
	in, out := bufio.NewReader(os.Stdin), bufio.NewWriter(stdout)
	for n := 0; ; n++ {
		var req shmvarpb.ConformanceRequest
		if err := readDelimited(in, &req); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		resp := conformanceCase(filepath.Join(*dir, fmt.Sprintf("conformance-%d-%d", os.Getpid(), n)), &req)
		b, err := proto.Marshal(resp)
		if err != nil {
			return err
		}
		out.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(b))))
		out.Write(b)
		if err := out.Flush(); err != nil {
			return err
		}
	}
}

func readDelimited(r io.Reader, m proto.Message) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	b := make([]byte, binary.LittleEndian.Uint32(n[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return proto.Unmarshal(b, m)
}

// conformanceReaders open a file typed, by the type a request asks for, or
// with the stored schema ("").
var conformanceReaders = map[string]func(string, shmvar.Options) (string, []byte, error){
	"":                   readConformance[proto.Message],
	"shmvar.examples.v1.Counter":  readConformance[*examplespb.Counter],
	"shmvar.examples.v1.AllTypes": readConformance[*examplespb.AllTypes],
}

// readConformance opens path as Open would, decodes the value as Get does and
// returns its stored type and its payload exactly as stored.
func readConformance[T proto.Message](path string, opts shmvar.Options) (string, []byte, error) {
	var (
		v   *shmvar.Var[T]
		err error
	)
	var zero T
	if any(zero) == nil {
		var a *shmvar.Var[proto.Message]
		a, err = shmvar.OpenAnyFile(path, opts)
		v = any(a).(*shmvar.Var[T])
	} else {
		v, err = shmvar.OpenFile[T](path, opts)
	}
	if err != nil {
		return "", nil, err
	}
	defer v.Close()
	if _, err := v.Get(); err != nil {
		return "", nil, err
	}
	payload, err := v.GetEncoded()
	return v.Descriptor().GetMessageType(), payload, err
}

func conformanceCase(path string, req *shmvarpb.ConformanceRequest) *shmvarpb.ConformanceResponse {
	fail := func(format string, args ...any) *shmvarpb.ConformanceResponse {
		return &shmvarpb.ConformanceResponse{Result: &shmvarpb.ConformanceResponse_RuntimeError{RuntimeError: fmt.Sprintf(format, args...)}}
	}
	read, ok := conformanceReaders[req.GetMessageType()]
	if !ok {
		return fail("type %s is not compiled into go-peer", req.GetMessageType())
	}
	if err := os.WriteFile(path, req.GetImage(), 0o600); err != nil {
		return fail("%v", err)
	}
	defer os.Remove(path)
	if req.GetSize() > uint64(len(req.GetImage())) {
		if err := os.Truncate(path, int64(req.GetSize())); err != nil {
			return fail("%v", err)
		}
	}
	typeName, payload, err := read(path, shmvar.Options{ReadOnly: true, InitWait: time.Nanosecond})
	var e *shmvar.Error
	switch {
	case err == nil:
		return &shmvarpb.ConformanceResponse{Result: &shmvarpb.ConformanceResponse_Value{
			Value: &shmvarpb.ConformanceValue{MessageType: typeName, Payload: payload}}}
	case errors.As(err, &e):
		return &shmvarpb.ConformanceResponse{Result: &shmvarpb.ConformanceResponse_Refusal{
			Refusal: &shmvarpb.ConformanceRefusal{Kind: e.Kind(), Message: err.Error()}}}
	default:
		return fail("untyped error %T: %v", err, err)
	}
}
