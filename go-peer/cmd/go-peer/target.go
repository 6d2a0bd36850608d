//go:build linux && (amd64 || arm64)

package main

import (
	"flag"
	"sort"

	"github.com/shmvar/shmvar/go-peer/examplespb"
	"github.com/shmvar/shmvar/go-peer/shmvar"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// target is what a command works on: a System V segment (--key K) or a
// mapped file (--file PATH).
type target struct {
	key  keyFlag
	file string
}

func targetFlags(fs *flag.FlagSet) *target {
	t := &target{}
	fs.Var(&t.key, "key", "")
	fs.StringVar(&t.file, "file", "", "")
	return t
}

// parse parses the command line and requires exactly one of --key and --file.
func (t *target) parse(fs *flag.FlagSet, args []string, positional int) error {
	if err := parse(fs, args, positional); err != nil {
		return err
	}
	return t.require()
}

func (t *target) require() error {
	switch {
	case t.key.set && t.file != "":
		return usageError{"give --key or --file, not both"}
	case !t.key.set && t.file == "":
		return usageError{"--key K or --file PATH is required"}
	}
	return nil
}

func (t *target) String() string {
	if t.file != "" {
		return "file=" + t.file
	}
	return "key=" + shmvar.FormatKey(t.key.key)
}

func (t *target) openAny(opts shmvar.Options) (*shmvar.Var[proto.Message], error) {
	if t.file != "" {
		return shmvar.OpenAnyFile(t.file, opts)
	}
	return shmvar.OpenAny(t.key.key, opts)
}

func (t *target) openCounter(opts shmvar.Options) (*shmvar.Var[*examplespb.Counter], error) {
	if t.file != "" {
		return shmvar.OpenFile[*examplespb.Counter](t.file, opts)
	}
	return shmvar.Open[*examplespb.Counter](t.key.key, opts)
}

func (t *target) create(mt protoreflect.MessageType, opts shmvar.Options) (*shmvar.Var[proto.Message], error) {
	if t.file != "" {
		return shmvar.CreateFileOf(t.file, mt, opts)
	}
	return shmvar.CreateOf(t.key.key, mt, opts)
}

// removeForce removes the segment or file without validating it.
func (t *target) removeForce() error {
	if t.file != "" {
		if err := unix.Unlink(t.file); err != nil {
			return &shmvar.Error{Op: "unlink", Path: t.file, Err: err}
		}
		return nil
	}
	return shmvar.RemoveKey(t.key.key)
}

func (t *target) errorf(op string, err error, detail string) *shmvar.Error {
	return &shmvar.Error{Op: op, Key: t.key.key, Path: t.file, Err: err, Detail: detail}
}

// lookupType finds a payload type compiled into this command by full name.
func lookupType(name string) (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(protoreflect.FullName(name))
	if err != nil || mt.Descriptor().ParentFile().Path() != examplesFile {
		return nil, protoregistry.NotFound
	}
	return mt, nil
}

// examplesFile holds the payload types the command knows by name; the
// protocol's own messages are not payloads.
var examplesFile = examplespb.File_shmvar_examples_v1_examples_proto.Path()

// knownTypes lists the payload types lookupType finds, for error messages.
func knownTypes() []string {
	var names []string
	msgs := examplespb.File_shmvar_examples_v1_examples_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		names = append(names, string(msgs.Get(i).FullName()))
	}
	sort.Strings(names)
	return names
}
