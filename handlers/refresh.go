package handlers

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/b24apps/leadcontacts/bitrix24"
	"github.com/b24apps/leadcontacts/oauth"
	"github.com/b24apps/leadcontacts/secret"
	"github.com/b24apps/leadcontacts/store"
)

// errSessionDead means the user's tokens can no longer be refreshed: the
// user has to reopen the tab, which brings a fresh pair from Bitrix24.
var errSessionDead = errors.New("session tokens cannot be refreshed")

// errNoNewerToken: the token was refused, nothing newer is stored, and the
// refusal is not one a refresh cures.
var errNoNewerToken = errors.New("no newer token stored")

// errRefreshFailed marks every failure of refreshSession: the call it was
// for never ran with a new token, so nothing about it is ambiguous.
var errRefreshFailed = errors.New("token refresh failed")

// refreshBudget bounds one detached refresh from start to end: waiting for
// the session's row lock (another instance may be refreshing), the OAuth
// request (itself bounded by oauth.RefreshTimeout, shorter, so the lock
// holder always finishes before a waiter gives up) and storing the pair.
const refreshBudget = oauth.RefreshTimeout + 10*time.Second

// storeAttempts is how often a refreshed pair is written before giving up,
// inside the lock and once more after it; storeBackoff is the first pause.
const (
	storeAttempts = 4
	storeBackoff  = 50 * time.Millisecond
)

// asUser is the one way to act on the portal as a session's user: call
// runs against the portal's stored endpoint (a renamed portal is followed
// once, see onPortal) with the session's access token, and a lasting
// problem the portal reports is recorded (noteProblem). When Bitrix24
// refuses the token, the session is first re-read: another request may
// have refreshed it meanwhile (and a refresh may revoke the old access
// token, which then answers invalid_token rather than expired_token). Only
// a token with no newer pair stored is refreshed, once, persisted before
// use; call then runs once more — never a loop. A session without a
// refresh token is never refreshed.
func (h *Handlers) asUser(ctx context.Context, sess *store.Session, p *store.Portal, call func(endpoint string, token secret.String) error) error {
	run := func(token secret.String) error {
		return h.onPortal(ctx, p, func(endpoint string) error { return call(endpoint, token) })
	}
	err := run(sess.AccessToken)
	// A token given without a refresh token (an automation rule's run)
	// cannot be renewed: its refusal stands.
	if bitrix24.IsAuthFailure(err) && !sess.RefreshToken.IsZero() {
		token, rerr := h.refreshSession(ctx, sess, p, bitrix24.Refreshable(err))
		switch {
		case rerr == nil:
			err = run(token)
		case !errors.Is(rerr, errNoNewerToken):
			err = rerr
		}
	}
	h.noteProblem(ctx, p, err)
	return err
}

// batchAsUser sends cmds in one batch with the session's user's token,
// through asUser; halt stops the batch at its first failing sub-call.
func (h *Handlers) batchAsUser(ctx context.Context, sess *store.Session, p *store.Portal, halt bool, cmds []bitrix24.Cmd) (*bitrix24.BatchResult, error) {
	var res *bitrix24.BatchResult
	err := h.asUser(ctx, sess, p, func(endpoint string, token secret.String) error {
		var err error
		res, err = h.d.REST.Batch(ctx, endpoint, token, halt, cmds)
		return err
	})
	return res, err
}

// refreshSession renews the session's token pair and returns the access
// token to use. Bitrix24 refresh tokens are single-use, so a pair must be
// spent exactly once, however many requests and instances find it expired:
//
//   - in this process, requests that saw the same token version share one
//     flight, which runs detached from them (bounded by refreshBudget): the
//     first caller hanging up must not fail the others, nor abandon a pair
//     the OAuth server has already rotated;
//   - across processes, the flight refreshes only while holding the
//     session's row lock (store.Locker; SELECT … FOR UPDATE on PostgreSQL)
//     and only if the stored version is still the one the caller saw —
//     otherwise another instance already refreshed and its pair is used.
//
// Each waiter stops waiting at its own deadline.
func (h *Handlers) refreshSession(ctx context.Context, sess *store.Session, p *store.Portal, refreshable bool) (secret.String, error) {
	key := sess.ID + "|" + strconv.FormatInt(sess.TokenVersion, 10)
	seen := *sess
	server := p.OAuthServer
	endpoint := p.RESTEndpoint
	f := h.refreshes.do(key, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshBudget)
		defer cancel()
		return h.renewSession(rctx, &seen, server, endpoint, refreshable)
	})
	v, err := f.wait(ctx)
	switch {
	case err == nil:
		return v.(secret.String), nil
	case errors.Is(err, errNoNewerToken):
		return secret.String{}, err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return secret.String{}, fmt.Errorf("refresh: %w", errors.Join(errRefreshFailed, bitrix24.ErrUnreachable, err))
	}
	return secret.String{}, errors.Join(errRefreshFailed, err)
}

// renewSession is the body of one refresh flight; see refreshSession.
func (h *Handlers) renewSession(ctx context.Context, seen *store.Session, server, endpoint string, refreshable bool) (secret.String, error) {
	var (
		out       secret.String
		tok       *oauth.Token
		persisted bool
	)
	lockErr := h.d.Store.WithSessionLock(ctx, seen.ID, func(ctx context.Context) error {
		cur, err := h.d.Store.Session(ctx, seen.ID, h.now())
		if err != nil {
			return errors.Join(errSessionDead, err)
		}
		if cur.TokenVersion != seen.TokenVersion {
			out = cur.AccessToken // refreshed meanwhile, here or by another instance
			return nil
		}
		if !refreshable {
			return errNoNewerToken
		}
		t, err := h.d.OAuth.Refresh(ctx, server, cur.RefreshToken)
		if err != nil {
			out, err = h.refreshRefused(ctx, cur, err)
			return err
		}
		if t.MemberID != cur.MemberID {
			return errors.Join(errSessionDead, fmt.Errorf("refreshed token belongs to member %q", t.MemberID))
		}
		if t.UserID != 0 && t.UserID != cur.UserID {
			// The frame's REFRESH_ID was not the user's the batch named
			// (nothing ties the two together): end the session rather
			// than act with another user's rights. (Every recorded refresh
			// answer names its user_id; one without could not be checked.)
			if derr := h.d.Store.DeleteSession(ctx, cur.ID); derr != nil {
				h.d.Logger.WarnContext(ctx, "session could not be deleted", "member", cur.MemberID, "err", derr)
			}
			h.d.Logger.WarnContext(ctx, "session ended: its refresh token belongs to another user",
				"member", cur.MemberID, "user", cur.UserID, "token_user", t.UserID)
			return errors.Join(errSessionDead, fmt.Errorf("refreshed token belongs to user %d, session is user %d", t.UserID, cur.UserID))
		}
		tok, out = t, t.AccessToken
		switch err := h.storeTokens(ctx, cur, t); {
		case err == nil, errors.Is(err, store.ErrNotFound):
			// Stored, or the session is gone (expired, uninstalled): the
			// pair still serves this one request.
			persisted = true
		case errors.Is(err, store.ErrConflict):
			// Only a writer that skips the lock can get here; its pair is
			// as good as ours, and ours serves this request.
			h.d.Logger.WarnContext(ctx, "session tokens changed under the lock", "member", cur.MemberID)
			persisted = true
		}
		return nil
	})
	if errors.Is(lockErr, store.ErrNotFound) {
		lockErr = errors.Join(errSessionDead, lockErr)
	}
	if tok == nil {
		return out, lockErr
	}
	if lockErr != nil || !persisted {
		// The OAuth server has rotated the pair, so the old refresh token is
		// spent: losing the new one ends the session. The write failed (or
		// its transaction did not commit): try again under a fresh lock, so
		// another instance never sees the spent pair as current meanwhile.
		err := h.d.Store.WithSessionLock(ctx, seen.ID, func(ctx context.Context) error {
			return h.storeTokens(ctx, seen, tok)
		})
		if err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			h.d.Logger.ErrorContext(ctx, "REFRESHED TOKENS LOST: the new pair could not be stored; the user must reopen the tab",
				"member", seen.MemberID, "user", seen.UserID, "err", err)
		}
	}
	h.noteEndpoint(ctx, seen.MemberID, endpoint, tok.ClientEndpoint)
	return out, nil
}

// storeTokens writes a refreshed pair with a compare-and-swap on the
// version the refresh started from, retrying failures that are not a lost
// race, each logged loudly (without the tokens).
func (h *Handlers) storeTokens(ctx context.Context, cur *store.Session, tok *oauth.Token) error {
	var err error
	for attempt := 1; attempt <= storeAttempts; attempt++ {
		err = h.d.Store.UpdateSessionTokens(ctx, cur.ID, cur.TokenVersion, tok.AccessToken, tok.RefreshToken)
		if err == nil || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			return err
		}
		h.d.Logger.ErrorContext(ctx, "refreshed tokens could not be stored; retrying",
			"member", cur.MemberID, "user", cur.UserID, "attempt", attempt, "err", err)
		if attempt == storeAttempts {
			break
		}
		t := time.NewTimer(storeBackoff << (attempt - 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
	return err
}

// refreshRefused handles an OAuth error. invalid_grant after the version
// check means our stored refresh token is dead — or that a writer which
// does not take the lock got there first: the store is read again, and a
// newer pair is used if there is one. Otherwise the grant is dead for
// good; the session is deleted so the next click says "reopen the tab"
// at once instead of spending another request on a dead grant.
func (h *Handlers) refreshRefused(ctx context.Context, cur *store.Session, err error) (secret.String, error) {
	switch {
	case errors.Is(err, oauth.ErrUnreachable), errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return secret.String{}, fmt.Errorf("refresh: %w", errors.Join(bitrix24.ErrUnreachable, err))
	case errors.Is(err, oauth.ErrPaymentRequired):
		return secret.String{}, errors.Join(bitrix24.ErrPaymentRequired, err)
	case oauth.CredentialsRejected(err):
		// The app's own credentials are wrong, not the user's grant: keep
		// the session, which works again once the operator fixes them.
		h.credentialsRejected(ctx, err)
		return secret.String{}, fmt.Errorf("refresh: %w", err)
	}
	if now, rerr := h.d.Store.Session(ctx, cur.ID, h.now()); rerr == nil && now.TokenVersion != cur.TokenVersion {
		return now.AccessToken, nil
	}
	if derr := h.d.Store.DeleteSession(ctx, cur.ID); derr != nil {
		h.d.Logger.WarnContext(ctx, "dead session could not be deleted", "member", cur.MemberID, "err", derr)
	}
	h.d.Logger.InfoContext(ctx, "session ended: refresh refused", "member", cur.MemberID, "user", cur.UserID, "err", err)
	return secret.String{}, errors.Join(errSessionDead, err)
}
