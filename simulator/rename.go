package simulator

import (
	"fmt"
	"net"
	"net/http"
	"time"
)

// portalAddr is where a portal answers: its base URL and the host:port that
// Bitrix24 calls DOMAIN.
type portalAddr struct {
	url    string
	domain string
}

// listenPortal opens a listener for a portal named host ("127.0.0.1",
// "localhost", ...) on a fresh port.
func listenPortal(host string) (net.Listener, *portalAddr, error) {
	listenHost := host
	if listenHost == "localhost" {
		// localhost may resolve to ::1 first; binding IPv4 keeps one address
		// while the name still makes a different site for the browser.
		listenHost = "127.0.0.1"
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(listenHost, "0"))
	if err != nil {
		return nil, nil, fmt.Errorf("simulator: portal listen: %w", err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	domain := net.JoinHostPort(host, port)
	return ln, &portalAddr{url: "http://" + domain, domain: domain}, nil
}

// frontDoor serves the portal on the listener of address own. While own is
// the portal's current address the request goes to the portal; once the
// portal has moved (MoveTo), the old address answers every request with a
// 302 to the same path and query on the current address, as a renamed
// Bitrix24 cloud account does (settings/how-to-call-rest-api/change-domen.md:
// "Bitrix24 responds with a redirect — status 301 or 302 and a Location
// header with the new address"; the Location keeps the method's path).
func (p *Portal) frontDoor(own *portalAddr) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := p.addr.Load()
		if cur == own {
			p.mux.ServeHTTP(w, r)
			return
		}
		target := cur.url + r.URL.RequestURI()
		if len(r.URL.Path) > len("/rest/") && r.URL.Path[:len("/rest/")] == "/rest/" {
			// Recorded so tests can see the redirect; the body (and so the
			// token) is not read: the old address does not run the call.
			p.record(Call{Time: p.s.Now(), Method: restMethodName(r.URL.Path), HTTPStatus: http.StatusFound, Error: "moved"})
		}
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusFound)
	})
}

// MoveTo renames the portal, as an administrator does when they replace the
// generated b24-xxxxxx address or connect a custom domain: the portal then
// answers on a new listener named newHost (a fresh port, so a different
// origin), keeps its member_id, data and tokens, and its old address
// answers every request with a 302 to the new one. Frames, events and the
// OAuth server's client_endpoint carry the new address from now on. Each
// old address keeps redirecting (to the current one) until Close.
//
// Real Bitrix24 moves to another host name on port 443; the simulator can
// only offer loopback names, so the new address differs by port (and by
// name when newHost is "localhost" and the old one "127.0.0.1").
func (p *Portal) MoveTo(newHost string) error {
	if newHost == "" {
		newHost = p.host
	}
	ln, addr, err := listenPortal(newHost)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: p.frontDoor(addr), ReadHeaderTimeout: 10 * time.Second}
	p.s.mu.Lock()
	select {
	case <-p.s.done:
		p.s.mu.Unlock()
		_ = ln.Close()
		return fmt.Errorf("simulator: closed")
	default:
	}
	p.moved = append(p.moved, srv)
	p.s.mu.Unlock()
	old := p.addr.Swap(addr)
	go func() { _ = srv.Serve(ln) }()
	p.s.log("portal %s moved from %s to %s", p.memberID, old.url, addr.url)
	return nil
}
