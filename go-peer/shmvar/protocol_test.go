package shmvar

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shmvar/shmvar/go-peer/shmvarpb"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The twins of ErrorKind (proto/shmvar/v1/protocol.proto): every exported
// Err* variable of this package, by name.
var sentinels = map[string]error{
	"ErrNotShmvar":           ErrNotShmvar,
	"ErrNotInitialised":      ErrNotInitialised,
	"ErrLayoutVersion":       ErrLayoutVersion,
	"ErrTypeMismatch":        ErrTypeMismatch,
	"ErrCorrupt":             ErrCorrupt,
	"ErrTooLarge":            ErrTooLarge,
	"ErrTimeout":             ErrTimeout,
	"ErrLockLost":            ErrLockLost,
	"ErrAttachmentsFull":     ErrAttachmentsFull,
	"ErrBusy":                ErrBusy,
	"ErrClosed":              ErrClosed,
	"ErrPermission":          ErrPermission,
	"ErrInvalidArgument":     ErrInvalidArgument,
	"ErrUnsupportedPlatform": ErrUnsupportedPlatform,
	"ErrUnavailable":         ErrUnavailable,
}

// camel turns NOT_SHMVAR into NotShmvar.
func camel(name string) string {
	var b strings.Builder
	for _, w := range strings.Split(name, "_") {
		b.WriteString(w[:1] + strings.ToLower(w[1:]))
	}
	return b.String()
}

// TestShouldHaveOneSentinelPerErrorKind checks both ways: each kind of
// ErrorKind has its Go twin (a sentinel named Err<Kind> printing the kind's
// text, or for NATIVE an errno and for INTERRUPTED the context's errors),
// and each Err* variable of the package is the twin of a kind.
func TestShouldHaveOneSentinelPerErrorKind(t *testing.T) {
	byKind := map[shmvarpb.ErrorKind]string{}
	for name, err := range sentinels {
		kind := (&Error{Err: err}).Kind()
		if want := "Err" + camel(kind.String()); name != want {
			t.Errorf("%s is the sentinel of kind %v, which wants the name %s", name, kind, want)
		}
		if other, ok := byKind[kind]; ok {
			t.Errorf("%s and %s are both sentinels of kind %v", name, other, kind)
		}
		byKind[kind] = name
		text := KindText(kind)
		if text == "" || err.Error() != text {
			t.Errorf("%s prints %q, protocol.proto gives kind %v the text %q", name, err.Error(), kind, text)
		}
		if got, want := (&Error{Op: "open", Key: 1, Err: err}).Error(), "open key=0x00000001: "+text; got != want {
			t.Errorf("%s: *Error prints %q, want %q", name, got, want)
		}
	}
	values := shmvarpb.ErrorKind(0).Descriptor().Values()
	for i := 0; i < values.Len(); i++ {
		kind := shmvarpb.ErrorKind(values.Get(i).Number())
		switch kind {
		case shmvarpb.ErrorKind_ERROR_KIND_UNSPECIFIED:
			if (&Error{Err: os.ErrNotExist}).Kind() != kind {
				t.Errorf("an error that is no kind's twin should have kind %v", kind)
			}
		case shmvarpb.ErrorKind_NATIVE:
			if got := (&Error{Err: unix.EEXIST}).Kind(); got != kind {
				t.Errorf("an errno has kind %v, want %v", got, kind)
			}
		case shmvarpb.ErrorKind_INTERRUPTED:
			for _, err := range []error{context.Canceled, context.DeadlineExceeded} {
				if got := (&Error{Err: err}).Kind(); got != kind {
					t.Errorf("%v has kind %v, want %v", err, got, kind)
				}
			}
		default:
			if _, ok := byKind[kind]; !ok {
				t.Errorf("kind %v of protocol.proto has no sentinel Err%s", kind, camel(kind.String()))
			}
		}
	}

	// Every exported Err* variable of the package is in sentinels above.
	fset := token.NewFileSet()
	files, _ := filepath.Glob("*.go")
	var declared []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range file.Scope.Objects {
			if name.Kind == ast.Var && strings.HasPrefix(name.Name, "Err") {
				declared = append(declared, name.Name)
			}
		}
	}
	sort.Strings(declared)
	for _, name := range declared {
		if _, ok := sentinels[name]; !ok {
			t.Errorf("%s is declared but is no kind's twin: add its kind to ErrorKind in protocol.proto and it to sentinels", name)
		}
	}
	if len(declared) != len(sentinels) {
		t.Errorf("the package declares %v; sentinels lists %d", declared, len(sentinels))
	}
}

// TestShouldTakeTimingsFromTheProtocol checks that each timing this package
// uses is the one ProtocolTiming declares, and that each timing declared
// there is used here.
func TestShouldTakeTimingsFromTheProtocol(t *testing.T) {
	used := map[string]time.Duration{
		"SPIN_MICROS":              spinFor,
		"CHECK_EVERY_MICROS":       checkEvery,
		"LOCK_PARK_MAX_MICROS":     parkFor,
		"READ_ONLY_TURN_MICROS":    readOnlyTurn,
		"CHANGE_PARK_MAX_MICROS":   changeParkMax,
		"READ_RETRY_LIMIT_MICROS":  readRetryLimit,
		"INIT_WAIT_DEFAULT_MICROS": initWait(Options{}),
	}
	values := shmvarpb.ProtocolTiming(0).Descriptor().Values()
	for i := 0; i < values.Len(); i++ {
		v := values.Get(i)
		if v.Number() == 0 {
			continue
		}
		d, ok := used[string(v.Name())]
		if !ok {
			t.Errorf("ProtocolTiming %s is not used by this package", v.Name())
			continue
		}
		if want := time.Duration(v.Number()) * time.Microsecond; d != want {
			t.Errorf("%s: this package uses %v, protocol.proto says %v", v.Name(), d, want)
		}
		delete(used, string(v.Name()))
	}
	for name := range used {
		t.Errorf("%s is not a ProtocolTiming of protocol.proto", name)
	}
}

// TestShouldNameEveryKindAndTimingInTheProtocolText checks that PROTOCOL.md
// points to each value of ErrorKind and ProtocolTiming.
func TestShouldNameEveryKindAndTimingInTheProtocolText(t *testing.T) {
	doc, err := os.ReadFile("../../proto/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, values := range [][]string{enumNames(shmvarpb.ErrorKind(0).Descriptor().Values()),
		enumNames(shmvarpb.ProtocolTiming(0).Descriptor().Values())} {
		for _, name := range values {
			if !regexp.MustCompile(`\b` + name + `\b`).Match(doc) {
				t.Errorf("PROTOCOL.md does not mention `%s`", name)
			}
		}
	}
}

func enumNames(values protoreflect.EnumValueDescriptors) []string {
	var names []string
	for i := 0; i < values.Len(); i++ {
		if v := values.Get(i); v.Number() != 0 {
			names = append(names, string(v.Name()))
		}
	}
	return names
}
