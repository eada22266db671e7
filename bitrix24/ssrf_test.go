package bitrix24

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

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
