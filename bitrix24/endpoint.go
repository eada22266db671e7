package bitrix24

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// ErrBadEndpoint reports a REST endpoint the app refuses to call.
var ErrBadEndpoint = errors.New("bitrix24: unacceptable portal endpoint")

// NormalizeEndpoint validates a portal REST endpoint (a client_endpoint as
// the OAuth server reports it, e.g. "https://x.bitrix24.com/rest/") and
// returns it in canonical form together with the portal's host[:port].
// It refuses user info, queries, fragments, other paths, non-ASCII hosts
// (IDNs must arrive as punycode), and — unless allowHTTP — plain http and
// non-public IP literals.
func NormalizeEndpoint(raw string, allowHTTP bool) (endpoint, host string, err error) {
	if len(raw) > 512 {
		return "", "", ErrBadEndpoint
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Opaque != "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", "", ErrBadEndpoint
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "https" && !(allowHTTP && scheme == "http") {
		return "", "", ErrBadEndpoint
	}
	if p := strings.TrimSuffix(u.Path, "/"); p != "/rest" {
		return "", "", ErrBadEndpoint
	}
	h, port := u.Hostname(), u.Port()
	h = strings.TrimSuffix(strings.ToLower(h), ".")
	if h == "" || len(h) > 253 {
		return "", "", ErrBadEndpoint
	}
	if ip, perr := netip.ParseAddr(h); perr == nil {
		if !allowHTTP && !PublicAddr(ip) {
			return "", "", ErrBadEndpoint
		}
	} else {
		for _, r := range h {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
				return "", "", ErrBadEndpoint
			}
		}
		if strings.HasPrefix(h, ".") || strings.Contains(h, "..") || strings.HasPrefix(h, "-") {
			return "", "", ErrBadEndpoint
		}
		if !allowHTTP && (h == "localhost" || strings.HasSuffix(h, ".localhost")) {
			return "", "", ErrBadEndpoint
		}
	}
	if port != "" {
		if len(port) > 5 || strings.TrimLeft(port, "0123456789") != "" {
			return "", "", ErrBadEndpoint
		}
		host = net.JoinHostPort(h, port)
	} else {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return scheme + "://" + host + "/rest/", host, nil
}
