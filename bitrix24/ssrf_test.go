package bitrix24

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/b24apps/leadcontacts/secret"
)

// PublicAddr is the dialer's verdict on every resolved address. Only
// globally routable unicast addresses pass; IPv4-mapped and NAT64 forms of
// private addresses do not.
func TestPublicAddr(t *testing.T) {
	refused := []string{
		"127.0.0.1", "127.255.255.254", "::1", "0.0.0.0", "::", "0.1.2.3",
		"10.0.0.5", "172.16.0.1", "172.31.255.255", "192.168.1.1", "100.64.0.1",
		"169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1",
		"224.0.0.1", "ff02::1", "255.255.255.255", "240.0.0.1",
		"192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", "2001:db8::1",
		"::ffff:127.0.0.1", "::ffff:10.0.0.5", "::ffff:169.254.169.254", "64:ff9b::a00:5", "64:ff9b::7f00:1",
		// Transition ranges that reach IPv4 hosts through gateways.
		"64:ff9b:1::a00:5", "2002:a00:5::1", "2002:7f00:1::1", "2001:0:4136:e378:8000:63bf:3fff:fdd2",
		"::a00:5", "::7f00:1", "fec0::1", "100::1",
	}
	for _, s := range refused {
		assert.False(t, PublicAddr(netip.MustParseAddr(s)), s)
	}
	for _, s := range []string{"8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"} {
		assert.True(t, PublicAddr(netip.MustParseAddr(s)), s)
	}
	assert.False(t, PublicAddr(netip.Addr{}))
}

// The dialer's Control hook refuses a connection to a non-public address
// after resolution and before connect(2): no packet leaves for it. Called
// directly here, so the test itself never sends traffic to those ranges.
func TestRefusePrivateRunsOnResolvedAddresses(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:443", "[::1]:443", "169.254.169.254:80", "10.0.0.5:8080", "[::ffff:192.168.0.1]:443", "[fe80::1%eth0]:443", "nonsense"} {
		err := refusePrivate("tcp", addr, nil)
		assert.ErrorIs(t, err, ErrForbiddenAddress, addr)
	}
	assert.NoError(t, refusePrivate("tcp", "8.8.8.8:443", nil))
	assert.NoError(t, refusePrivate("tcp6", "[2606:4700:4700::1111]:443", nil))
}

// With the production client, names that resolve to loopback are refused
// at connect time — the DNS-rebinding case, where a name that passed any
// earlier check resolves to an internal address — and the token never
// leaves the process.
func TestProductionClientRefusesLoopbackNames(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, err := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	require.NoError(t, err)
	c := New(Options{HTTPClient: NewHTTPClient(false)})
	// Only names /etc/hosts answers: the test makes no DNS query.
	for _, host := range []string{"localhost", "127.0.0.1", "::1"} {
		err := c.Call(context.Background(), "http://"+net.JoinHostPort(host, port)+"/rest/", secret.New("sentinel-token-ssrf"), "profile", nil, nil)
		require.ErrorIs(t, err, ErrForbiddenAddress, host)
		assert.NotContains(t, err.Error(), "sentinel-token-ssrf")
	}
	assert.Zero(t, hits.Load(), "nothing reached the loopback server")
}

// A 302 to a private address, or to another public host, is not followed:
// the token stays with the portal that was called (H12, A12's refusal).
func TestRedirectToAnInternalHostIsNotFollowed(t *testing.T) {
	var hits atomic.Int32
	internal := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
	defer internal.Close()
	for _, target := range []string{internal.URL + "/rest/profile", "http://169.254.169.254/latest/meta-data/", "https://evil.example/rest/profile"} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target, http.StatusTemporaryRedirect)
		}))
		err := newTestClient().Call(context.Background(), srv.URL+"/rest/", secret.New("t"), "profile", nil, nil)
		srv.Close()
		require.ErrorIs(t, err, ErrMoved, target)
	}
	assert.Zero(t, hits.Load())
}

// F6: when the HTTP client's own timeout fires, the error (which Go builds
// from the request line) carries no secret, because the token travels in
// the body and never in the URL.
func TestClientTimeoutErrorsCarryNoSecret(t *testing.T) {
	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(block)
	hc := NewHTTPClient(true)
	hc.Timeout = 150 * time.Millisecond
	c := New(Options{HTTPClient: hc, Backoff: func(int) time.Duration { return time.Millisecond }})
	const token = "sentinel-token-timeout-4242"
	err := c.Call(context.Background(), srv.URL+"/rest/", secret.New(token), "crm.lead.contact.items.delete", map[string]any{"id": 5}, nil)
	require.ErrorIs(t, err, ErrUnreachable)
	assert.NotContains(t, err.Error(), token)
	_, err = c.Batch(context.Background(), srv.URL+"/rest/", secret.New(token), true, []Cmd{{Key: "a", Method: "profile"}})
	require.ErrorIs(t, err, ErrUnreachable)
	assert.NotContains(t, err.Error(), token)
}

// FuzzDecodeEnvelope (I5): the REST envelope decoder never panics, and
// its verdict is consistent: a success is HTTP 200 with a result and no
// error; a failure is a typed *Error carrying the HTTP status, or
// ErrBadResponse. IDs and results arrive in any JSON shape.
func FuzzDecodeEnvelope(f *testing.F) {
	seeds := []struct {
		status int
		body   string
	}{
		{200, `{"result":true,"time":{"start":1,"finish":2,"duration":0.1,"operating":0,"operating_reset_at":1700000000}}`},
		{200, `{"result":{"ID":"5","TITLE":"x"}}`},
		{200, `{"result":[{"CONTACT_ID":1},{"CONTACT_ID":"2"}],"total":2,"next":50}`},
		{200, `{"result":false}`},
		{200, `{"result":null}`},
		{200, `{"time":{}}`},
		{200, `{"error":"ACCESS_DENIED","error_description":"Access denied."}`},
		{401, `{"error":"expired_token","error_description":"The access token provided has expired."}`},
		{400, `{"error":"","error_description":"Not found"}`},
		{503, `{"error":"QUERY_LIMIT_EXCEEDED","error_description":"Too many requests"}`},
		{429, `{"error":"OPERATION_TIME_LIMIT","error_description":"x","time":{"operating_reset_at":"soon"}}`},
		{502, `<html><body>Bad Gateway</body></html>`},
		{200, `{"result":tr`},
		{200, `{"error":null,"result":1}`},
		{200, `{"error":5}`},
		{500, `{"result":true}`},
		{200, `[]`},
		{200, ``},
	}
	for _, s := range seeds {
		f.Add(s.status, s.body)
	}
	f.Fuzz(func(t *testing.T, status int, body string) {
		env, err := decodeEnvelope("m", status, []byte(body))
		if err == nil {
			if env == nil || env.Result == nil || env.Error != nil || status != http.StatusOK {
				t.Fatalf("accepted HTTP %d %q as %+v", status, body, env)
			}
			if !json.Valid(env.Result) {
				t.Fatalf("result %q is not JSON", env.Result)
			}
			return
		}
		if env != nil {
			t.Fatalf("envelope with an error for %q", body)
		}
		var be *Error
		if errors.As(err, &be) {
			if be.HTTPStatus != status || be.Method != "m" {
				t.Fatalf("error %+v lost the status %d", be, status)
			}
			return
		}
		if !errors.Is(err, ErrBadResponse) {
			t.Fatalf("untyped error %v for %q", err, body)
		}
	})
}
