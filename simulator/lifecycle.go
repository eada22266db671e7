package simulator

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
)

// appPresentLocked reports whether the app is installed at all (finished or
// not): only then can its tokens work.
func (p *Portal) appPresentLocked() bool { return p.state != notInstalled }

// BeginInstall is the admin clicking Install in the Market: the app becomes
// "installed but not finished" (also when it was installed before), a new
// application_token is generated, user tokens are issued and the installer
// POST is returned. It needs App.InstallURL (an app without an installer has
// nothing to POST to).
func (p *Portal) BeginInstall(userID int) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.s.app.InstallURL == "" {
		return Frame{}, errors.New("simulator: App.InstallURL is empty")
	}
	if err := p.beginInstallLocked(userID); err != nil {
		return Frame{}, err
	}
	return p.frameLocked(userID, frameInstaller, p.s.app.InstallURL, "DEFAULT", nil, p.lang), nil
}

func (p *Portal) beginInstallLocked(userID int) error {
	u, ok := p.users[userID]
	if !ok {
		return fmt.Errorf("simulator: no user %d", userID)
	}
	if !u.Admin {
		return errors.New("simulator: only an administrator can install apps")
	}
	// SILENT: running the installer again on an installed app (a reinstall
	// or version update flow) is undocumented in detail. It is modelled as a
	// new unfinished install that keeps existing bindings and tokens, so an
	// app must cope with its own stale or duplicate bindings.
	p.appToken = randomHex(16)
	p.state = installing
	if p.s.app.InstallURL != "" {
		// Recorded (server 26.800.0, bitrix-tools/b24-rest-docs PR #370):
		// an install or update drops the ONAPPINSTALL binding, and only
		// apps without an installer page get it back. The event is
		// optional for an app with an installer.
		kept := p.events[:0]
		for _, e := range p.events {
			if e.Event != "ONAPPINSTALL" {
				kept = append(kept, e)
			}
		}
		p.events = kept
	}
	p.s.log("portal %s: install begun by user %d", p.memberID, userID)
	return nil
}

// Install is BeginInstall followed by FinishInstall, for tests that only need
// an installed app. Without App.InstallURL the returned Frame is empty.
func (p *Portal) Install(userID int) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if err := p.beginInstallLocked(userID); err != nil {
		return Frame{}, err
	}
	var f Frame
	if p.s.app.InstallURL != "" {
		f = p.frameLocked(userID, frameInstaller, p.s.app.InstallURL, "DEFAULT", nil, p.lang)
	}
	p.state = installed
	p.s.log("portal %s: install finished", p.memberID)
	return f, nil
}

// FinishInstall is what BX24.installFinish() does: INSTALLED becomes true,
// placements become visible and events start being delivered.
func (p *Portal) FinishInstall() {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.state == installing {
		p.state = installed
		p.s.log("portal %s: install finished", p.memberID)
	}
}

// Installed reports whether the install was finished.
func (p *Portal) Installed() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.state == installed
}

// InstallStarted reports whether the app is installed, finished or not.
func (p *Portal) InstallStarted() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.state != notInstalled
}

// ApplicationToken is the current application_token ("" when not installed).
func (p *Portal) ApplicationToken() string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.appToken
}

// Placements returns the bound placement handlers.
func (p *Portal) Placements() []PlacementBinding {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]PlacementBinding(nil), p.placements...)
}

// Events returns the bound event handlers.
func (p *Portal) Events() []EventBinding {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return append([]EventBinding(nil), p.events...)
}

// IssueTokens issues a fresh AUTH_ID/REFRESH_ID pair for a user, as Bitrix24
// does on every frame open. Tokens only work while the app is installed.
func (p *Portal) IssueTokens(userID int) TokenPair {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.s.issueLocked(p, userID)
}

// IssueAuthCode returns an authorization code for the user, as the redirect
// of /oauth/authorize/ would carry it (it lives 30 s of simulated time).
func (p *Portal) IssueAuthCode(userID int) string {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.issueCodeLocked(userID)
}

func (p *Portal) issueCodeLocked(userID int) string {
	code := randomHex(16)
	p.s.codes[code] = &authCode{portal: p, userID: userID, expires: p.s.nowLocked().Add(authCodeTTL)}
	return code
}

// Uninstall removes the app: all its tokens are revoked, placements and event
// bindings removed, then ONAPPUNINSTALL is POSTed (form-encoded) to the handler
// bound for it, if any. It returns the delivery error or non-2xx status.
func (p *Portal) Uninstall(ctx context.Context, clean bool) error {
	p.s.mu.Lock()
	if p.state == notInstalled {
		p.s.mu.Unlock()
		return errors.New("simulator: app is not installed")
	}
	// Events are only delivered to finished installs (installation-finish.md),
	// SILENT: so uninstalling an unfinished install delivers nothing.
	deliver := p.state == installed
	var handlers []EventBinding
	for _, e := range p.events {
		if e.Event == "ONAPPUNINSTALL" {
			handlers = append(handlers, e)
		}
	}
	form := url.Values{}
	form.Set("event", "ONAPPUNINSTALL")
	form.Set("data[LANGUAGE_ID]", p.lang)
	if clean {
		form.Set("data[CLEAN]", "1")
	} else {
		form.Set("data[CLEAN]", "0")
	}
	form.Set("ts", strconv.FormatInt(p.s.nowLocked().Unix(), 10))
	p.eventAuthLocked(form)
	p.s.revokePortalLocked(p)
	p.placements = nil
	p.events = nil
	p.frames = map[string]frameInfo{}
	p.state = notInstalled
	p.appToken = ""
	p.s.mu.Unlock()
	p.s.log("portal %s: app uninstalled (clean=%v)", p.memberID, clean)
	if !deliver {
		return nil
	}
	return p.deliverAll(ctx, handlers, form)
}
