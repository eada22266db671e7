package bitrix24

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrForbiddenAddress is returned when a connection would go to a loopback,
// private, link-local or otherwise special address.
var ErrForbiddenAddress = errors.New("bitrix24: refusing to connect to a non-public address")

// Settings that keep pooled connections to portals warm. A user opens the
// tab, reads it, and clicks minutes later; the click should reuse the
// tab's TLS connection and cost one round trip, not a new handshake.
const (
	// idleConnTimeout keeps an idle connection for a click up to a
	// quarter of an hour after the tab opened (Go's default, 90 s, drops
	// it before most clicks). An idle connection costs a socket and a few
	// tens of KiB, at most maxIdleConns of them; a portal that closes one
	// first is noticed at once (EOF or GOAWAY) and the pool forgets it.
	idleConnTimeout = 15 * time.Minute
	// http2PingInterval: an HTTP/2 connection that has heard nothing for
	// this long is pinged, which keeps NAT and firewall state alive while
	// it idles and finds a dead connection before a click is sent into it
	// (rather than after ResponseHeaderTimeout). HTTP/1.1 connections get
	// the same from TCP keep-alive probes (tcpKeepAlive).
	http2PingInterval = 45 * time.Second
	// tcpKeepAlive is the idle time before TCP keep-alive probes, and
	// their interval: well under the few minutes after which NATs drop
	// silent flows.
	tcpKeepAlive = 30 * time.Second
	// tlsSessionCacheSize bounds the TLS sessions kept for resumption: a
	// connection the portal closed is replaced with an abbreviated
	// handshake (one round trip less on TLS 1.2, no certificate chain
	// to verify), for the portals active lately.
	tlsSessionCacheSize = 256
	maxIdleConns        = 256
)

// NewHTTPClient returns the HTTP client for portals and OAuth servers:
// pooled keep-alive connections kept warm (a portal is a network round
// trip away, so reusing TLS connections is most of the latency win; see
// idleConnTimeout), HTTP/2 when the server offers it (one connection
// carries every concurrent request to a portal), TLS session resumption
// for reconnects, bounded timeouts, no redirects followed (a renamed
// portal answers 302 and Go would turn the re-sent POST into a GET
// without its body), and a dialer that refuses non-public addresses
// unless allowPrivate (development and tests), which also defeats DNS
// rebinding because the check runs on the resolved IP at connect time.
func NewHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: tcpKeepAlive}
	if !allowPrivate {
		dialer.Control = refusePrivate
	}
	transport := &http.Transport{
		Proxy:       nil,
		DialContext: dialer.DialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessionCacheSize),
		},
		// With a TLSClientConfig of its own, the transport offers h2 only
		// when asked to.
		ForceAttemptHTTP2:     true,
		HTTP2:                 &http.HTTP2Config{SendPingTimeout: http2PingInterval},
		MaxIdleConns:          maxIdleConns,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       idleConnTimeout,
		TLSHandshakeTimeout:   5 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport: transport,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

func refusePrivate(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	if !PublicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// PublicAddr reports whether ip is a globally routable unicast address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	for _, p := range specialPrefixes {
		if p.Contains(ip) {
			return false
		}
	}
	return ip.IsGlobalUnicast()
}

// specialPrefixes are ranges that IsPrivate and friends do not cover.
var specialPrefixes = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // TEST-NET-1
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // TEST-NET-2
	netip.MustParsePrefix("203.0.113.0/24"),  // TEST-NET-3
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	// IPv6 ranges that carry or reach an IPv4 address through a gateway
	// (NAT64, 6to4, Teredo, IPv4-compatible): a private IPv4 host hides
	// behind them, so they are refused whatever they embed.
	netip.MustParsePrefix("64:ff9b::/96"),   // NAT64 well-known prefix
	netip.MustParsePrefix("64:ff9b:1::/48"), // NAT64 local-use prefixes
	netip.MustParsePrefix("2002::/16"),      // 6to4
	netip.MustParsePrefix("2001::/32"),      // Teredo
	netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
	netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	netip.MustParsePrefix("100::/64"),       // discard-only
}
