package bitrix24

import (
	"errors"
	"net"
	"net/netip"
	"net/url"
	"strings"
)

// cloudZones are the domains under which Bitrix24 hands out cloud account
// addresses (b24-xxxxxx.bitrix24.com and the names an administrator picks
// instead). A portal that moves answers its old address with a redirect;
// the app follows it only into one of these zones, where only Bitrix24
// serves accounts, so the user's token never goes to a host somebody else
// controls. Custom domains are not followed: the next token refresh brings
// the new address from the OAuth server (client_endpoint) instead.
var cloudZones = []string{
	"bitrix24.com", "bitrix24.de", "bitrix24.eu", "bitrix24.es", "bitrix24.fr",
	"bitrix24.it", "bitrix24.pl", "bitrix24.uk", "bitrix24.in", "bitrix24.cn",
	"bitrix24.jp", "bitrix24.id", "bitrix24.vn", "bitrix24.com.br", "bitrix24.com.tr",
	"bitrix24.ru", "bitrix24.by", "bitrix24.kz", "bitrix24.ua",
}

// CloudHost reports whether host (no port) is a Bitrix24 cloud account
// address: exactly one label in front of a cloud zone, so neither
// "bitrix24.com" itself nor "a.b.bitrix24.com" nor
// "x.bitrix24.com.evil.example" qualifies.
func CloudHost(host string) bool {
	host = strings.ToLower(host)
	for _, zone := range cloudZones {
		label, ok := strings.CutSuffix(host, "."+zone)
		if !ok || label == "" || len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
			continue
		}
		if strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" {
			return true
		}
	}
	return false
}

// ErrMoveRefused: the portal redirected to a host the app does not follow.
var ErrMoveRefused = errors.New("bitrix24: redirect to a host that is not a Bitrix24 cloud address; not followed")

// MovedEndpoint reads the new REST endpoint out of a redirect answer (err
// is ErrMoved) and decides whether the app may follow it: the target must
// be a valid endpoint (NormalizeEndpoint) on a Bitrix24 cloud host, over
// https — or, when allowHTTP (development and tests), also a loopback
// address or localhost. It returns the endpoint in canonical form and its
// host[:port]. The method path the Location carries is dropped: the caller
// repeats its own call, with its own body, against the new endpoint.
func MovedEndpoint(err error, allowHTTP bool) (endpoint, host string, _ error) {
	var me *MovedError
	if !errors.As(err, &me) {
		return "", "", errors.New("bitrix24: not a redirect")
	}
	u, perr := url.Parse(me.Location)
	if perr != nil || !u.IsAbs() {
		return "", "", ErrMoveRefused
	}
	// Keep what precedes the method name: ".../rest/<method>" → ".../rest/".
	i := strings.Index(u.Path, "/rest/")
	if i < 0 {
		return "", "", ErrMoveRefused
	}
	base := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: u.Path[:i+len("/rest/")]}
	endpoint, host, nerr := NormalizeEndpoint(base.String(), allowHTTP)
	if nerr != nil {
		return "", "", ErrMoveRefused
	}
	name := host
	if h, _, serr := net.SplitHostPort(host); serr == nil {
		name = h
	}
	name = strings.Trim(name, "[]")
	switch {
	case CloudHost(name) && strings.HasPrefix(endpoint, "https://") && !strings.Contains(host, ":"):
		return endpoint, host, nil
	case allowHTTP && (name == "localhost" || isLoopback(name)):
		return endpoint, host, nil
	}
	return "", "", ErrMoveRefused
}

func isLoopback(h string) bool {
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}
