package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func master(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func TestStringRedactsEverywhere(t *testing.T) {
	s := New("sentinel-secret-value")
	type wrapper struct {
		Token String
		Ptr   *String
	}
	w := wrapper{Token: s, Ptr: &s}
	var logs bytes.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil))
	logger.Info("x", "token", s, "wrapped", w)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("y", "token", s)
	js, err := json.Marshal(w)
	require.NoError(t, err)
	outputs := []string{
		fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s %q %x %X %d", s, s, s, s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", w, w, w), string(js), logs.String(), s.String(), s.GoString(),
	}
	for _, out := range outputs {
		assert.NotContains(t, out, "sentinel", out)
	}
	assert.Equal(t, "sentinel-secret-value", s.Reveal())
	assert.NotContains(t, s.Fingerprint(), "sent")
	assert.Len(t, s.Fingerprint(), 8)
}

func TestParseMaster(t *testing.T) {
	hexKey := strings.Repeat("ab", 32)
	for _, in := range []string{hexKey, "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80=", "q83vq83vq83vq83vq83vq83vq83vq83vq83vq83vq80"} {
		b, err := ParseMaster(in)
		require.NoError(t, err, in)
		assert.Len(t, b, 32)
	}
	for _, in := range []string{"", "short", strings.Repeat("ab", 31), "not base64 !!!"} {
		_, err := ParseMaster(in)
		assert.Error(t, err, in)
	}
}

func TestSealOpenBindsAAD(t *testing.T) {
	k, err := NewKeyring(master(1))
	require.NoError(t, err)
	ct := k.Seal(New("token-a"), "portals|m1|access_token")
	assert.True(t, strings.HasPrefix(ct, "v1:"+k.KeyID()+":"))
	assert.NotContains(t, ct, "token-a")
	pt, err := k.Open(ct, "portals|m1|access_token")
	require.NoError(t, err)
	assert.Equal(t, "token-a", pt.Reveal())
	_, err = k.Open(ct, "portals|m2|access_token")
	assert.ErrorIs(t, err, ErrCorrupt, "copied to another row")
	_, err = k.Open(ct, "portals|m1|refresh_token")
	assert.ErrorIs(t, err, ErrCorrupt, "copied to another column")
	// Tamper with the tag; the replacement must differ from what the
	// random nonce happened to produce, or the test flakes.
	tampered := ct[:len(ct)-2] + "AA"
	if tampered == ct {
		tampered = ct[:len(ct)-2] + "BA"
	}
	_, err = k.Open(tampered, "portals|m1|access_token")
	assert.ErrorIs(t, err, ErrCorrupt)
	assert.NotEqual(t, ct, k.Seal(New("token-a"), "portals|m1|access_token"), "random nonce")
	empty, err := k.Open("", "x")
	require.NoError(t, err)
	assert.True(t, empty.IsZero())
}

func TestRotation(t *testing.T) {
	old, err := NewKeyring(master(1))
	require.NoError(t, err)
	ct := old.Seal(New("tok"), "aad")
	h := old.Hash(New("app-token"))

	rotated, err := NewKeyring(master(2), master(1))
	require.NoError(t, err)
	pt, err := rotated.Open(ct, "aad")
	require.NoError(t, err)
	assert.Equal(t, "tok", pt.Reveal())
	assert.True(t, rotated.NeedsReseal(ct))
	assert.True(t, rotated.Verify(New("app-token"), h))
	assert.False(t, rotated.HashIsCurrent(h))
	assert.False(t, rotated.NeedsReseal(rotated.Seal(New("tok"), "aad")))

	retired, err := NewKeyring(master(2))
	require.NoError(t, err)
	_, err = retired.Open(ct, "aad")
	assert.ErrorIs(t, err, ErrUnknownKey)
	assert.False(t, retired.Verify(New("app-token"), h))
	assert.True(t, rotated.CanVerify(h))
	assert.False(t, retired.CanVerify(h), "a hash under a retired key cannot be checked")
	assert.False(t, retired.CanVerify(""))
	assert.False(t, retired.CanVerify("h1:zz"))

	_, err = NewKeyring(master(1), master(1))
	assert.Error(t, err)
	_, err = NewKeyring(make([]byte, 16))
	assert.Error(t, err)
}

func TestHashVerify(t *testing.T) {
	k, err := NewKeyring(master(3))
	require.NoError(t, err)
	h := k.Hash(New("app-token"))
	assert.NotContains(t, h, "app-token")
	assert.True(t, k.Verify(New("app-token"), h))
	assert.False(t, k.Verify(New("app-tokeN"), h))
	assert.False(t, k.Verify(New("app-token-longer"), h))
	assert.False(t, k.Verify(New(""), h), "empty never matches")
	assert.False(t, k.Verify(New(""), ""), "empty never equals empty")
	assert.False(t, k.Verify(New("app-token"), ""))
	assert.Equal(t, "", k.Hash(New("")))
}

func TestPairsArePerPurposeAndRotate(t *testing.T) {
	k, err := NewKeyring(master(4), master(5))
	require.NoError(t, err)
	a, b := k.Pairs("page-context"), k.Pairs("browser-cookie")
	require.Len(t, a, 4)
	for i := range a {
		assert.Len(t, a[i], 32)
		assert.NotEqual(t, a[i], b[i])
	}
	assert.NotEqual(t, k.Lookup("x"), k.Lookup("y"))
	assert.Equal(t, k.Lookup("x"), k.Lookup("x"))
}
