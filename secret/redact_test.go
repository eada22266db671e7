package secret

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"text/template"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Every way a value reaches text — each fmt verb with flags, widths and
// precisions, values and pointers, nested in structs, slices and maps,
// wrapped in errors, as JSON values and map keys, XML, text templates, the
// standard logger and slog's handlers and groups — prints the redaction,
// never the value or any part of it.
func TestStringRedactsInEveryEncoding(t *testing.T) {
	const raw = "sentinel-9f1e2d3c4b5a"
	s := New(raw)
	ptr := &s
	type inner struct {
		Token String
		Ptr   *String
	}
	type outer struct {
		In    inner
		List  []String
		Map   map[string]String
		Keyed map[String]int
		Any   any
	}
	o := outer{In: inner{Token: s, Ptr: ptr}, List: []String{s, s}, Map: map[string]String{"k": s}, Keyed: map[String]int{s: 1}, Any: s}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%t", "%p", "%T", "%10s", "%-12v", "%.3s", "%08x", "%+q", "%#q", "% x", "%U", "%c", "%e", "%[1]s"} {
		outputs = append(outputs, fmt.Sprintf(verb, s), fmt.Sprintf(verb, ptr), fmt.Sprintf(verb, o), fmt.Sprintf(verb, &o))
	}
	outputs = append(outputs, fmt.Sprint(s, ptr, o), fmt.Sprintln(s, ptr, o), s.String(), s.GoString())

	err := fmt.Errorf("refresh with %v failed: %w", s, errors.New("boom"))
	outputs = append(outputs, err.Error(), errors.Join(err, fmt.Errorf("%s", s)).Error())

	for _, v := range []any{s, ptr, o, &o, []String{s}, map[String]String{s: s}} {
		b, err := json.Marshal(v)
		require.NoError(t, err)
		outputs = append(outputs, string(b))
		b, err = json.MarshalIndent(v, "", " ")
		require.NoError(t, err)
		outputs = append(outputs, string(b))
	}
	mt, err := s.MarshalText()
	require.NoError(t, err)
	mj, err := s.MarshalJSON()
	require.NoError(t, err)
	outputs = append(outputs, string(mt), string(mj), s.LogValue().String())
	type doc struct{ Token String }
	x, err := xml.Marshal(doc{s})
	require.NoError(t, err)
	outputs = append(outputs, string(x))

	var tpl bytes.Buffer
	require.NoError(t, template.Must(template.New("t").Parse(`{{.}} {{printf "%q" .}} {{.Reveal | len}}`)).Execute(&tpl, s))
	outputs = append(outputs, tpl.String())

	var logs bytes.Buffer
	log.New(&logs, "", 0).Printf("%v %s %+v", s, ptr, o)
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("x", "token", s, "ptr", ptr, "struct", o, slog.Group("g", "token", s), slog.Any("any", s))
		l.With("token", s).WithGroup("grp").Error("y", "ptr", ptr)
		l.Info(fmt.Sprint(s))
	}
	outputs = append(outputs, logs.String())

	for _, out := range outputs {
		for i := 0; i+6 <= len(raw); i++ {
			if part := raw[i : i+6]; strings.Contains(out, part) {
				t.Fatalf("%q leaks %q of the secret", out, part)
			}
		}
	}
	assert.Contains(t, outputs[0], redacted)
	assert.Equal(t, raw, s.Reveal())
}
