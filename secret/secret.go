// Package secret keeps credentials out of logs and at rest: a String type
// that redacts itself everywhere it could be printed, and a Keyring that
// derives every key of the app from the master APP_SECRET.
package secret

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
)

// redacted is what a String prints wherever it ends up.
const redacted = "[redacted]"

// String holds a secret value (an access token, a refresh token, the
// client secret). Its raw value is reachable only through Reveal, so an
// accidental %v, %#v, JSON encoding or slog attribute prints "[redacted]".
type String struct {
	// v points at the value instead of holding it. fmt prints %p of a
	// non-pointer (and any other verb error) by reflection without
	// calling Format; a pointer field then shows as an address, never as
	// the value.
	v *string
}

// New wraps a raw secret value.
func New(v string) String {
	if v == "" {
		return String{}
	}
	return String{v: &v}
}

// Reveal returns the raw value. Call it only where the value leaves the
// process for its intended recipient (a request body, an encryption input).
func (s String) Reveal() string {
	if s.v == nil {
		return ""
	}
	return *s.v
}

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s.v == nil || *s.v == "" }

// Equal reports whether two secrets hold the same value.
func (s String) Equal(o String) bool { return s.Reveal() == o.Reveal() }

// String implements fmt.Stringer with a fixed redaction.
func (s String) String() string { return redacted }

// GoString implements fmt.GoStringer so %#v redacts too.
func (s String) GoString() string { return redacted }

// Format implements fmt.Formatter so every verb (%s, %q, %x, %d...) redacts.
func (s String) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON implements json.Marshaler with a redaction.
func (s String) MarshalJSON() ([]byte, error) { return json.Marshal(redacted) }

// MarshalText implements encoding.TextMarshaler with a redaction, which
// also covers encoders that prefer text (XML, some loggers).
func (s String) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// LogValue implements slog.LogValuer with a redaction.
func (s String) LogValue() slog.Value { return slog.StringValue(redacted) }

// Fingerprint returns a short, non-reversible tag of the value (the first
// 8 hex digits of its SHA-256) so logs can correlate a token across lines
// without printing any of its characters.
func (s String) Fingerprint() string {
	if s.IsZero() {
		return "none"
	}
	sum := sha256.Sum256([]byte(s.Reveal()))
	return hex.EncodeToString(sum[:4])
}
