package simulator

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
func (p *Portal) BeginInstall(userID int) (Frame, error) { return p.beginInstall(userID, "") }

// beginInstall is BeginInstall in the admin's language (empty: the
// portal's).
func (p *Portal) beginInstall(userID int, lang string) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if p.s.app.InstallURL == "" {
		return Frame{}, errors.New("simulator: App.InstallURL is empty")
	}
	return p.beginInstallLocked(userID, lang)
}

// beginInstallLocked begins an install; the Frame is empty without
// App.InstallURL.
func (p *Portal) beginInstallLocked(userID int, lang string) (Frame, error) {
	u, ok := p.users[userID]
	if !ok {
		return Frame{}, fmt.Errorf("simulator: no user %d", userID)
	}
	if !u.Admin {
		return Frame{}, errors.New("simulator: only an administrator can install apps")
	}
	// SILENT: running the installer again on an installed app (a reinstall
	// or version update flow) is undocumented in detail. It is modelled as a
	// new unfinished install that keeps existing bindings and tokens, so an
	// app must cope with its own stale or duplicate bindings.
	if p.state == installed {
		// bizproc-robot-delete.md: "when the application is deleted or
		// updated, the associated robots are removed"; the stages that
		// use them keep them, blocked, until the app registers them again.
		p.robots = nil
	}
	p.appToken = randomHex(16)
	p.state = installing
	p.s.log("portal %s: install begun by user %d", p.memberID, userID)
	if p.s.app.InstallURL == "" {
		return Frame{}, nil
	}
	// Recorded (server 26.800.0, bitrix-tools/b24-rest-docs PR #370): an
	// install or update drops the ONAPPINSTALL binding, and only apps
	// without an installer page get it back. The event is optional for an
	// app with an installer.
	p.events = slices.DeleteFunc(p.events, func(e EventBinding) bool { return e.Event == "ONAPPINSTALL" })
	return p.frameLocked(userID, frameInstaller, p.s.app.InstallURL, "DEFAULT", nil, lang), nil
}

// Install is BeginInstall followed by FinishInstall, for tests that only need
// an installed app. Without App.InstallURL the returned Frame is empty.
func (p *Portal) Install(userID int) (Frame, error) {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	f, err := p.beginInstallLocked(userID, "")
	if err == nil {
		p.finishInstallLocked()
	}
	return f, err
}

// FinishInstall is what BX24.installFinish() does: INSTALLED becomes true,
// placements become visible and events start being delivered.
func (p *Portal) FinishInstall() {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.finishInstallLocked()
}

func (p *Portal) finishInstallLocked() {
	if p.state == installing {
		p.state = installed
		p.s.log("portal %s: install finished", p.memberID)
	}
}

// Installed reports whether the install was finished.
func (p *Portal) Installed() bool { return locked(p.s, func() bool { return p.state == installed }) }

// InstallStarted reports whether the app is installed, finished or not.
func (p *Portal) InstallStarted() bool { return locked(p.s, p.appPresentLocked) }

// ApplicationToken is the current application_token ("" when not installed).
func (p *Portal) ApplicationToken() string { return locked(p.s, func() string { return p.appToken }) }

// Placements returns the bound placement handlers.
func (p *Portal) Placements() []PlacementBinding {
	return locked(p.s, func() []PlacementBinding { return append([]PlacementBinding(nil), p.placements...) })
}

// Events returns the bound event handlers.
func (p *Portal) Events() []EventBinding {
	return locked(p.s, func() []EventBinding { return append([]EventBinding(nil), p.events...) })
}

// IssueTokens issues a fresh AUTH_ID/REFRESH_ID pair for a user, as Bitrix24
// does on every frame open. Tokens only work while the app is installed.
func (p *Portal) IssueTokens(userID int) TokenPair {
	return locked(p.s, func() TokenPair { return p.s.issueLocked(p, userID) })
}

// IssueAuthCode returns an authorization code for the user, as the redirect
// of /oauth/authorize/ would carry it (it lives 30 s of simulated time).
func (p *Portal) IssueAuthCode(userID int) string {
	return locked(p.s, func() string { return p.issueCodeLocked(userID) })
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
	handlers, form := p.eventLocked("ONAPPUNINSTALL")
	form.Set("data[LANGUAGE_ID]", p.lang)
	form.Set("data[CLEAN]", strconv.Itoa(bit(clean)))
	p.s.revokePortalLocked(p)
	p.placements = nil
	p.events = nil
	p.robots = nil
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
