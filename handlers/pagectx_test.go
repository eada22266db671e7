package handlers

import (
	"bytes"
	"testing"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
)

// contextCodec builds the page-context codec exactly as New does.
func contextCodec(t testing.TB, ttl time.Duration, masters ...[]byte) *Handlers {
	t.Helper()
	keys, err := secret.NewKeyring(masters[0], masters[1:]...)
	require.NoError(t, err)
	h := &Handlers{ctxCodecs: securecookie.CodecsFromPairs(keys.Pairs("page-context")...)}
	for _, c := range h.ctxCodecs {
		sc := c.(*securecookie.SecureCookie)
		sc.MaxAge(int(ttl.Seconds()))
		sc.SetSerializer(securecookie.JSONEncoder{})
	}
	return h
}

func encodeContext(t testing.TB, h *Handlers, pc pageContext) string {
	t.Helper()
	s, err := securecookie.EncodeMulti(contextName, pc, h.ctxCodecs...)
	require.NoError(t, err)
	return s
}

func TestPageContextRoundTripAndBinding(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	h := contextCodec(t, time.Hour, k1)
	pc := pageContext{SID: "sid", MemberID: "m1", LeadID: 5, UserID: 2, BID: "b"}
	enc := encodeContext(t, h, pc)
	got, err := h.decodePageContext(enc)
	require.NoError(t, err)
	assert.Equal(t, pc, got)

	// Minted under another name (the cookie's), it is refused.
	other, err := securecookie.EncodeMulti(cookieName, pc, h.ctxCodecs...)
	require.NoError(t, err)
	_, err = h.decodePageContext(other)
	assert.Error(t, err)

	// Rotation: readable while the old master is still configured, not after.
	rotated := contextCodec(t, time.Hour, k2, k1)
	_, err = rotated.decodePageContext(enc)
	assert.NoError(t, err)
	retired := contextCodec(t, time.Hour, k2)
	_, err = retired.decodePageContext(enc)
	assert.Error(t, err)

	// Incomplete contexts are refused even when correctly signed.
	_, err = h.decodePageContext(encodeContext(t, h, pageContext{SID: "s", MemberID: "m"}))
	assert.Error(t, err)
}

func FuzzPageContext(f *testing.F) {
	h := contextCodec(f, time.Hour, bytes.Repeat([]byte{9}, 32))
	minted := pageContext{SID: "sid", MemberID: "m1", LeadID: 5, UserID: 2}
	valid := encodeContext(f, h, minted)
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add("")
	f.Add("MTY5NzQ2|garbage|sig")
	f.Fuzz(func(t *testing.T, s string) {
		pc, err := h.decodePageContext(s)
		if err != nil {
			return
		}
		// Only what the server minted decodes (each fuzz worker mints
		// its own token, so compare contents, not strings).
		if pc != minted {
			t.Fatalf("accepted a forged context %q as %+v", s, pc)
		}
	})
}
