// Package reqid carries one id per inbound request through its context,
// and a slog.Handler that stamps that id on every log line the request
// causes (the request's own line, the REST exchanges it makes, the
// problems it meets), so an operator can follow one click end to end.
package reqid

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
)

// Header is the header the id is echoed in (and accepted from a trusted
// proxy).
const Header = "X-Request-Id"

// Attr is the log attribute that carries the id.
const Attr = "request_id"

// MaxLen bounds an id accepted from a proxy; a UUID or a W3C trace id fits.
const MaxLen = 64

type key struct{}

// With returns ctx carrying id.
func With(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From returns the id ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}

// New returns a fresh random id: 16 bytes, hex.
func New() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// Valid reports whether an id from a proxy may be used as is: 1 to MaxLen
// characters of letters, digits and "-_.:", so it can neither break a log
// line nor smuggle a header.
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// Handler wraps next so that every record logged with a context that
// carries an id gets it as the request_id attribute.
func Handler(next slog.Handler) slog.Handler { return handler{next} }

type handler struct{ next slog.Handler }

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	if id := From(ctx); id != "" {
		r = r.Clone()
		r.AddAttrs(slog.String(Attr, id))
	}
	return h.next.Handle(ctx, r)
}

func (h handler) WithAttrs(as []slog.Attr) slog.Handler { return handler{h.next.WithAttrs(as)} }

func (h handler) WithGroup(name string) slog.Handler { return handler{h.next.WithGroup(name)} }
