package simulator

import (
	"net/http"
	"strings"
)

func (s *Simulator) oauthMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/oauth/token/", s.serveToken)
	mux.HandleFunc("/oauth/token", s.serveToken)
	mux.HandleFunc("/rest/", s.serveOAuthREST)
	mux.HandleFunc("/api/v1/", serveShim)
	mux.HandleFunc("/api/v1", serveShim)
	mux.HandleFunc("GET /{$}", s.serveIndex)
	return mux
}

// serveToken is /oauth/token/: GET with a query as documented
// (settings/oauth/auto-renewal.md) or a POST form as CRest and x/oauth2 send.
func (s *Simulator) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		apiErr(http.StatusMethodNotAllowed, "invalid_request", "Method not allowed").write(w)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := r.ParseForm(); err != nil {
		apiErr(http.StatusBadRequest, "invalid_request", "Malformed request").write(w)
		return
	}
	grant := r.Form.Get("grant_type")
	rec := Refresh{
		Time:               s.Now(),
		GrantType:          grant,
		ClientID:           r.Form.Get("client_id"),
		RefreshTokenPrefix: prefix4(r.Form.Get("refresh_token")),
	}
	s.mu.Lock()
	f, faulted := takeFaultLocked(&s.faults, grant, false)
	s.mu.Unlock()
	if faulted {
		if handled, status, errText := s.serveFault(r.Context(), w, f); handled {
			rec.Status, rec.Error = status, errText
			s.addRefresh(rec)
			return
		}
	}
	status, body := s.token(r, &rec)
	rec.Status = status
	s.addRefresh(rec)
	writeJSONResponse(w, status, body)
}

func (s *Simulator) addRefresh(rec Refresh) {
	s.mu.Lock()
	s.refreshes = append(s.refreshes, rec)
	s.mu.Unlock()
	s.log("oauth: %s for client %q (token %s…): status %d %s", rec.GrantType, rec.ClientID, rec.RefreshTokenPrefix, rec.Status, rec.Error)
}

func (s *Simulator) token(r *http.Request, rec *Refresh) (int, any) {
	// The recorded wrong_client, invalid_client and invalid_grant answers
	// carry no error_description (testdata/recorded/oauth_*.json).
	fail := func(status int, code, desc string) (int, any) {
		rec.Error = code
		body := fields("error", code)
		if desc != "" {
			body.Set("error_description", desc)
		}
		return status, body
	}
	grant := r.Form.Get("grant_type")
	clientID, secret := r.Form.Get("client_id"), r.Form.Get("client_secret")
	var secretArg string
	switch grant {
	case "refresh_token":
		secretArg = r.Form.Get("refresh_token")
	case "authorization_code":
		secretArg = r.Form.Get("code")
	default:
		// SILENT: RFC 6749 would say unsupported_grant_type; Bitrix24 only
		// documents invalid_request for malformed requests.
		return fail(http.StatusBadRequest, "invalid_request", "Unsupported grant_type")
	}
	if clientID == "" || secret == "" || secretArg == "" {
		return fail(http.StatusBadRequest, "invalid_request", "Missing required parameter")
	}
	// As recorded from the real servers (testdata/recorded/oauth_*.json): an
	// unknown client_id is answered with HTTP 200 and an error body, a
	// wrong secret with 400 invalid_client.
	if clientID != s.app.ClientID {
		return fail(http.StatusOK, "wrong_client", "")
	}
	if secret != s.app.ClientSecret {
		return fail(http.StatusBadRequest, "invalid_client", "")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.nowLocked()
	var p *Portal
	var userID int
	switch grant {
	case "refresh_token":
		t, ok := s.refresh[secretArg]
		if !ok || t.used || !now.Before(t.expires) || !t.portal.appPresentLocked() {
			return fail(http.StatusBadRequest, "invalid_grant", "")
		}
		// Single use. Whether the access token issued with it dies too is
		// unsettled (the legacy docs say it does): Options.RefreshKeepsAccess
		// picks, and the tests run both.
		t.used = true
		if at, ok := s.access[t.access]; ok && !s.keepAccess {
			at.revoked = true
		}
		p, userID = t.portal, t.userID
	case "authorization_code":
		c, ok := s.codes[secretArg]
		if !ok || c.used || !now.Before(c.expires) || !c.portal.appPresentLocked() {
			return fail(http.StatusBadRequest, "invalid_grant", "")
		}
		c.used = true
		p, userID = c.portal, c.userID
	}
	rec.UserID, rec.MemberID = userID, p.memberID
	tok := s.issueLocked(p, userID)
	// scope is recorded as the literal "app", never the granted list
	// (platform doc §2.2; testdata/recorded/token_refresh_*.json).
	return http.StatusOK, fields("access_token", tok.AccessToken, "expires", now.Add(accessTokenTTL).Unix(),
		"expires_in", tok.ExpiresIn, "scope", "app", "domain", strings.TrimPrefix(s.url, "http://"),
		"server_endpoint", s.serverEndpoint(), "status", s.app.Status, "client_endpoint", p.RESTEndpoint(),
		"member_id", p.memberID, "user_id", userID, "refresh_token", tok.RefreshToken)
}

// serveOAuthREST is the OAuth server's own REST: only app.info, which apps use
// to verify a token (b24phpsdk calls {server}/rest/app.info?auth=...).
func (s *Simulator) serveOAuthREST(w http.ResponseWriter, r *http.Request) {
	start := s.Now()
	method := restMethodName(r.URL.Path)
	s.mu.Lock()
	f, faulted := takeFaultLocked(&s.faults, method, false)
	s.mu.Unlock()
	if faulted {
		if handled, _, _ := s.serveFault(r.Context(), w, f); handled {
			return
		}
	}
	params, err := parseRequestParams(r)
	if err != nil {
		apiErr(http.StatusBadRequest, "INVALID_REQUEST", "Request body could not be parsed").write(w)
		return
	}
	if method != "app.info" {
		errMethodNotFound().write(w)
		return
	}
	auth, _ := params.Get("auth")
	token := str(auth)
	s.mu.Lock()
	defer s.mu.Unlock()
	t, st := s.checkTokenLocked(token, nil)
	if st != tokenOK {
		authError(token, st).write(w)
		return
	}
	p := t.portal
	// SILENT: the response shape is undocumented. The documented app.info
	// fields plus "install" with what b24phpsdk checks (install.uri), and
	// member_id so a token can be tied to its portal.
	info := p.appInfoLocked().Set("scope", s.scopeString()).Set("client_id", s.app.ClientID).
		Set("user_id", t.userID).Set("expires", t.expires.Unix()).
		Set("install", fields("installed", p.state == installed, "version", appVersion(s.app.Version),
			"status", s.app.Status, "uri", p.URL(), "domain", p.Domain(), "member_id", p.memberID))
	writeJSONResponse(w, http.StatusOK, fields("result", info, "time", timeInfo(start, s.nowLocked(), false)))
}

// serveShim serves the BX24 JS shim.
func serveShim(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Access-Control-Allow-Origin", "*")
	serveAsset(w, r, "bx24.js", "application/javascript; charset=utf-8")
}
