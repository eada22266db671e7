package simulator

import (
	"fmt"
	"net"
	"net/http"
	"strings"
)

// The simulator's own listener serves the OAuth server and the BX24 JS
// shim, and any portal added with PortalOptions.SharedListener, told apart
// by the request's Host: real Bitrix24 has them on different hosts too
// (oauth.bitrix.info, api.bitrix24.com, the portal's own name), and two
// loopback names on one port stay two sites for the browser. So a demo
// needs one port for all of Bitrix24, next to the app's.

// oauthHost is the name the OAuth server answers as: 127.0.0.1, whatever
// the listen address, so that a portal named localhost on the same port is
// another origin and another site.
const oauthHost = "127.0.0.1"

// listenSim opens the simulator's listener on addr ("" means 127.0.0.1:0)
// and returns it with the OAuth server's base URL.
func listenSim(addr string) (net.Listener, string, error) {
	if addr == "" {
		addr = net.JoinHostPort(oauthHost, "0")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, "", fmt.Errorf("simulator: listen address %q: %w", addr, err)
	}
	if host == "localhost" {
		// localhost may resolve to ::1 first; the names below are IPv4.
		addr = net.JoinHostPort(oauthHost, port)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, "", fmt.Errorf("simulator: listen on %s: %w", addr, err)
	}
	_, port, _ = net.SplitHostPort(ln.Addr().String())
	return ln, "http://" + net.JoinHostPort(oauthHost, port), nil
}

// port is the simulator listener's port.
func (s *Simulator) port() string {
	_, port, _ := net.SplitHostPort(s.ln.Addr().String())
	return port
}

// front routes a request on the simulator's listener: to the portal that
// answers as the request's Host, else to the OAuth server (which also
// serves the shim). Without shared portals everything is the OAuth server,
// whatever the Host.
func (s *Simulator) front(oauth http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h, ok := s.hosts[strings.ToLower(r.Host)]
		s.mu.Unlock()
		if ok {
			h.ServeHTTP(w, r)
			return
		}
		oauth.ServeHTTP(w, r)
	})
}

// sharedPortalAddr names a portal on the simulator's listener: host on
// the simulator's port. The name must not be the OAuth server's nor
// another portal's, or the Host could not tell them apart.
func (s *Simulator) sharedPortalAddr(host string) (*portalAddr, error) {
	domain := strings.ToLower(net.JoinHostPort(host, s.port()))
	if "http://"+domain == s.url {
		return nil, fmt.Errorf("simulator: a portal on the shared listener needs a host other than %s (the OAuth server's), e.g. localhost", oauthHost)
	}
	if _, taken := s.hosts[domain]; taken {
		return nil, fmt.Errorf("simulator: %s already answers on the shared listener", domain)
	}
	return &portalAddr{url: "http://" + domain, domain: domain}, nil
}

// serveIndex answers GET / on the OAuth server's name with where the
// portals are: someone who opens the simulator's port by the wrong name
// (127.0.0.1 instead of localhost) learns the right address. Apps never
// call this path.
func (s *Simulator) serveIndex(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	b.WriteString("Simulated Bitrix24 OAuth server and BX24 JS library (" + s.JSURL() + ").\n\nPortals:\n")
	s.mu.Lock()
	for _, p := range s.portals {
		b.WriteString("  " + p.URL() + "/\n")
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write([]byte(b.String()))
}
