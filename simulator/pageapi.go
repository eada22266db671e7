package simulator

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

func (p *Portal) uninstall(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	if !base.User.Admin {
		return p.message(base, http.StatusForbidden, "Access denied", "Only administrators can uninstall apps.", false)
	}
	clean := r.PostFormValue("clean") != ""
	err := p.Uninstall(r.Context(), clean)
	base.Status = "App not installed"
	if err != nil {
		return p.message(base, http.StatusOK, "App uninstalled", "ONAPPUNINSTALL delivery problem: "+strings.TrimPrefix(err.Error(), "simulator: "), false)
	}
	return p.message(base, http.StatusOK, "App uninstalled", "All tokens were revoked, placements and event handlers removed.", true)
}

// authorize is /oauth/authorize/ (settings/oauth/index.md): the user is
// logged in, so no form; the redirect goes to the URI from the app settings.
func (p *Portal) authorize(w http.ResponseWriter, r *http.Request, base pageBase) (string, any, int) {
	q := r.URL.Query()
	if q.Get("client_id") != p.s.app.ClientID {
		return p.message(base, http.StatusBadRequest, "Authorization failed", "Unknown client_id.", false)
	}
	p.s.mu.Lock()
	present := p.appPresentLocked()
	code := ""
	if present {
		code = p.issueCodeLocked(base.User.ID)
	}
	p.s.mu.Unlock()
	if !present {
		return p.message(base, http.StatusBadRequest, "Authorization failed", "The application is not installed on this portal.", false)
	}
	if p.s.app.RedirectURI == "" {
		return p.message(base, http.StatusBadRequest, "Authorization failed", "The application has no redirect URI.", false)
	}
	v := url.Values{"code": {code}, "state": {q.Get("state")}, "domain": {p.Domain()}, "member_id": {p.memberID},
		"scope": {p.s.scopeString()}, "server_domain": {strings.TrimPrefix(p.s.url, "http://")}}
	sep := "?"
	if strings.Contains(p.s.app.RedirectURI, "?") {
		sep = "&"
	}
	http.Redirect(w, r, p.s.app.RedirectURI+sep+v.Encode(), http.StatusFound)
	return "", nil, 0
}

func (p *Portal) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	types := map[string]string{"portal.js": "application/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
	ct, ok := types[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	serveAsset(w, r, name, ct)
}

// serveAsset serves one embedded asset.
func serveAsset(w http.ResponseWriter, r *http.Request, name, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, time.Time{}, strings.NewReader(assetText(name)))
}

// apiLeadContacts feeds reloadData: the lead's contacts as JSON.
func (p *Portal) apiLeadContacts(w http.ResponseWriter, r *http.Request) {
	uid := p.currentUser(w, r)
	id, _ := strconv.Atoi(r.PathValue("id"))
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	rec, found := p.leads[id]
	if !found {
		writeJSONResponse(w, http.StatusNotFound, fields("error", "not found"))
		return
	}
	if !p.users[uid].canRead() {
		writeJSONResponse(w, http.StatusForbidden, fields("error", "access denied"))
		return
	}
	writeJSONResponse(w, http.StatusOK, p.contactRowsLocked(rec))
}

// frameOf checks a posted APP_SID against the frames this portal opened.
func (p *Portal) frameOf(r *http.Request) (frameInfo, bool) {
	sid := r.PostFormValue("app_sid")
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	fi, ok := p.frames[sid]
	return fi, ok && sid != ""
}

func (p *Portal) apiInstallFinish(w http.ResponseWriter, r *http.Request) {
	fi, ok := p.frameOf(r)
	if !ok || fi.kind != frameInstaller {
		writeJSONResponse(w, http.StatusForbidden, fields("error", "unknown installer APP_SID"))
		return
	}
	p.FinishInstall()
	writeJSONResponse(w, http.StatusOK, fields("installed", true))
}

// apiAuth answers getAuth/refreshAuth with fresh tokens for the frame's user.
func (p *Portal) apiAuth(w http.ResponseWriter, r *http.Request) {
	fi, ok := p.frameOf(r)
	if !ok {
		writeJSONResponse(w, http.StatusForbidden, fields("error", "unknown APP_SID"))
		return
	}
	tok := p.IssueTokens(fi.userID)
	writeJSONResponse(w, http.StatusOK, p.authData(tok.AccessToken, tok.RefreshToken, tok.ExpiresIn))
}

// authData is the auth object BX24.getAuth() answers with.
func (p *Portal) authData(access, refresh string, expiresIn int) obj {
	return fields("access_token", access, "refresh_token", refresh, "expires_in", expiresIn,
		"domain", p.Domain(), "member_id", p.memberID)
}
