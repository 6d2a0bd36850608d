//go:build linux && (amd64 || arm64)

package main

import (
	"encoding/base64"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// The canonical renderings of a value, which java-peer writes byte for byte
// the same (README, "Output formats"; Java: Canonical.java). protobuf-go's
// prototext varies its spacing on purpose and protojson and Java's
// JsonFormat differ in spacing and number formats, so neither is used for
// output.
//
// Both: fields in field-number order; a field without presence only when it
// is not zero (a float is zero only when all its bits are: -0 is printed);
// map entries sorted by key (numbers by value, strings by their UTF-8 bytes);
// unknown fields and extensions left out; well-known types printed as plain
// messages. Floating-point numbers are the shortest decimal that reads back
// to the same float or double, written as ECMAScript's Number.toString does
// (1e+21, 0.000001, 1e-7, 100, 1.5).

// canonText is the value in protobuf text format on one line: fields
// separated by one space, name: value, name { ... } for messages, repeated
// fields as one entry per element, strings with " \ and control bytes
// escaped (\n \r \t, others as three octal digits) and other UTF-8 as is,
// bytes with every byte outside printable ASCII as three octal digits.
func canonText(m protoreflect.Message) string {
	var b strings.Builder
	textFields(&b, m)
	return b.String()
}

// canonJSON is the value as compact JSON: protobuf's JSON mapping (lowerCamelCase
// names, 64-bit integers as strings, bytes as base64, enums by name) with no
// space, fields in field-number order and NaN and infinities as "NaN",
// "Infinity" and "-Infinity".
func canonJSON(m protoreflect.Message) string {
	var b strings.Builder
	jsonMessage(&b, m)
	return b.String()
}

func sortedFields(m protoreflect.Message) []protoreflect.FieldDescriptor {
	fields := m.Descriptor().Fields()
	var out []protoreflect.FieldDescriptor
	for i := 0; i < fields.Len(); i++ {
		if fd := fields.Get(i); present(m, fd) {
			out = append(out, fd)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number() < out[j].Number() })
	return out
}

func present(m protoreflect.Message, fd protoreflect.FieldDescriptor) bool {
	switch {
	case fd.IsMap():
		return m.Get(fd).Map().Len() > 0
	case fd.IsList():
		return m.Get(fd).List().Len() > 0
	case fd.HasPresence():
		return m.Has(fd)
	}
	v := m.Get(fd)
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return v.Bool()
	case protoreflect.EnumKind:
		return v.Enum() != 0
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return v.Int() != 0
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint() != 0
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return math.Float64bits(v.Float()) != 0
	case protoreflect.StringKind:
		return v.String() != ""
	case protoreflect.BytesKind:
		return len(v.Bytes()) > 0
	}
	return m.Has(fd)
}

// sortedKeys orders a map's keys: false before true, numbers by value,
// strings by their bytes.
func sortedKeys(mp protoreflect.Map, kd protoreflect.FieldDescriptor) []protoreflect.MapKey {
	var keys []protoreflect.MapKey
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i].Value(), keys[j].Value()
		switch kd.Kind() {
		case protoreflect.BoolKind:
			return !a.Bool() && b.Bool()
		case protoreflect.StringKind:
			return a.String() < b.String()
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return a.Uint() < b.Uint()
		default:
			return a.Int() < b.Int()
		}
	})
	return keys
}

func textFields(b *strings.Builder, m protoreflect.Message) {
	first := true
	sep := func() {
		if !first {
			b.WriteByte(' ')
		}
		first = false
	}
	for _, fd := range sortedFields(m) {
		name := string(fd.Name())
		switch v := m.Get(fd); {
		case fd.IsMap():
			kd, vd := fd.MapKey(), fd.MapValue()
			for _, k := range sortedKeys(v.Map(), kd) {
				sep()
				b.WriteString(name + " { key: ")
				textScalar(b, kd, k.Value())
				textEntry(b, "value", vd, v.Map().Get(k))
				b.WriteString(" }")
			}
		case fd.IsList():
			for i := 0; i < v.List().Len(); i++ {
				sep()
				textSingle(b, name, fd, v.List().Get(i))
			}
		default:
			sep()
			textSingle(b, name, fd, v)
		}
	}
}

// textEntry writes a map entry's value after its key.
func textEntry(b *strings.Builder, name string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	b.WriteByte(' ')
	textSingle(b, name, fd, v)
}

func textSingle(b *strings.Builder, name string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		inner := canonText(v.Message())
		if inner == "" {
			b.WriteString(name + " {}")
		} else {
			b.WriteString(name + " { " + inner + " }")
		}
		return
	}
	b.WriteString(name + ": ")
	textScalar(b, fd, v)
}

func textScalar(b *strings.Builder, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		textQuote(b, []byte(v.String()), false)
	case protoreflect.BytesKind:
		textQuote(b, v.Bytes(), true)
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			b.WriteString(string(ev.Name()))
		} else {
			b.WriteString(strconv.Itoa(int(v.Enum())))
		}
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			b.WriteString("nan")
		case math.IsInf(f, 1):
			b.WriteString("inf")
		case math.IsInf(f, -1):
			b.WriteString("-inf")
		default:
			b.WriteString(canonFloat(f, fd.Kind() == protoreflect.FloatKind))
		}
	default:
		b.WriteString(scalarString(fd, v))
	}
}

// scalarString is a bool or integer in decimal.
func scalarString(fd protoreflect.FieldDescriptor, v protoreflect.Value) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return strconv.FormatBool(v.Bool())
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.StringKind:
		return v.String()
	}
	return strconv.FormatInt(v.Int(), 10)
}

func textQuote(b *strings.Builder, s []byte, binary bool) {
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20 || c == 0x7f || binary && c >= 0x80:
			fmt.Fprintf(b, `\%03o`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// canonFloat is the shortest decimal (fewest significant digits, rounded
// half to even) that parses back to f (as a float when single), in
// ECMAScript's Number.toString layout. f is finite.
func canonFloat(f float64, single bool) string {
	if f == 0 {
		if math.Signbit(f) {
			return "-0"
		}
		return "0"
	}
	bits := 64
	if single {
		bits = 32
	}
	var s string
	for p := 1; p <= 17; p++ {
		s = strconv.FormatFloat(f, 'e', p-1, 64)
		if back, err := strconv.ParseFloat(s, bits); err == nil && back == f {
			break
		}
	}
	neg := s[0] == '-'
	s = strings.TrimPrefix(s, "-")
	mant, exp, _ := strings.Cut(s, "e")
	e, _ := strconv.Atoi(exp)
	digits := strings.TrimRight(strings.Replace(mant, ".", "", 1), "0")
	return esNumber(neg, digits, e+1)
}

// esNumber lays out 0.DIGITS × 10^n as ECMAScript's Number::toString does.
func esNumber(neg bool, digits string, n int) string {
	k := len(digits)
	var out string
	switch {
	case k <= n && n <= 21:
		out = digits + strings.Repeat("0", n-k)
	case 0 < n && n <= 21:
		out = digits[:n] + "." + digits[n:]
	case -6 < n && n <= 0:
		out = "0." + strings.Repeat("0", -n) + digits
	default:
		out = digits[:1]
		if k > 1 {
			out += "." + digits[1:]
		}
		sign := "+"
		if n-1 < 0 {
			sign = "-"
		}
		out += "e" + sign + strconv.Itoa(abs(n-1))
	}
	if neg {
		return "-" + out
	}
	return out
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func jsonMessage(b *strings.Builder, m protoreflect.Message) {
	b.WriteByte('{')
	for i, fd := range sortedFields(m) {
		if i > 0 {
			b.WriteByte(',')
		}
		jsonString(b, fd.JSONName())
		b.WriteByte(':')
		switch v := m.Get(fd); {
		case fd.IsMap():
			kd, vd := fd.MapKey(), fd.MapValue()
			b.WriteByte('{')
			for j, k := range sortedKeys(v.Map(), kd) {
				if j > 0 {
					b.WriteByte(',')
				}
				jsonString(b, scalarString(kd, k.Value()))
				b.WriteByte(':')
				jsonSingle(b, vd, v.Map().Get(k))
			}
			b.WriteByte('}')
		case fd.IsList():
			b.WriteByte('[')
			for j := 0; j < v.List().Len(); j++ {
				if j > 0 {
					b.WriteByte(',')
				}
				jsonSingle(b, fd, v.List().Get(j))
			}
			b.WriteByte(']')
		default:
			jsonSingle(b, fd, v)
		}
	}
	b.WriteByte('}')
}

func jsonSingle(b *strings.Builder, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		jsonMessage(b, v.Message())
	case protoreflect.StringKind:
		jsonString(b, v.String())
	case protoreflect.BytesKind:
		jsonString(b, base64.StdEncoding.EncodeToString(v.Bytes()))
	case protoreflect.EnumKind:
		if ev := fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			jsonString(b, string(ev.Name()))
		} else {
			b.WriteString(strconv.Itoa(int(v.Enum())))
		}
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		jsonString(b, scalarString(fd, v))
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			b.WriteString(`"NaN"`)
		case math.IsInf(f, 1):
			b.WriteString(`"Infinity"`)
		case math.IsInf(f, -1):
			b.WriteString(`"-Infinity"`)
		default:
			b.WriteString(canonFloat(f, fd.Kind() == protoreflect.FloatKind))
		}
	default:
		b.WriteString(scalarString(fd, v))
	}
}

// jsonString writes s as a JSON string: " \ and control characters escaped
// (\b \f \n \r \t, others as \u00XX), everything else as is.
func jsonString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			b.WriteString(`\"`)
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\b':
			b.WriteString(`\b`)
		case c == '\f':
			b.WriteString(`\f`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\t':
			b.WriteString(`\t`)
		case c < 0x20:
			fmt.Fprintf(b, `\u%04x`, c)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
}

// jsonQuote is s as a JSON string, for the command's own JSON objects.
func jsonQuote(s string) string {
	var b strings.Builder
	jsonString(&b, s)
	return b.String()
}
