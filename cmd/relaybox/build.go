package main

// What relaybox builds from a validated config before it binds anything:
// the recipient rules, the client networks, the upstream client with its
// files loaded, and inbound TLS from named files. `check-config`, `run`
// and a reload all go through build, so none of them can accept a config
// another refuses.

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"relaybox/internal/config"
	"relaybox/internal/deliver"
	"relaybox/internal/oauth"
	"relaybox/internal/policy"
	"relaybox/internal/smtpd"
)

// built is one config and what was built from it.
type built struct {
	cfg   config.Config
	src   config.Source
	rules *policy.Rules
	nets  *policy.Networks
	// authReq: auth.required, the networks that must AUTH; nil for none.
	authReq *policy.Networks
	client  *deliver.Client
	// tokens and oauth are the bearer-token sources of the upstreams that
	// use OAuth, indexed like cfg.Upstream (nil elsewhere): the client
	// fetches from tokens, the daemon refreshes oauth in the background.
	tokens []deliver.TokenSource
	oauth  []*oauth.Source
	// tls is inbound TLS from listen.tls_cert / tls_key files; nil when
	// tls_cert is "" or "auto" (generated in data_dir at start, which is
	// a start-up step, not a config check).
	tls *tls.Config
}

// build turns a validated config into the daemon's parts. Every error is
// a config problem naming FILE:LINE: key (exit 2). log receives the
// upstream client's loud warnings (insecure = true); nil discards them.
func build(cfg config.Config, src config.Source, log *slog.Logger) (*built, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b := &built{cfg: cfg, src: src}
	var err error
	if b.rules, err = policy.NewRules(cfg.Policy.RecipientDomains); err != nil {
		return nil, src.KeyError("policy.recipient_domains", err)
	}
	if b.nets, err = policy.NetworkRules(cfg.Listen.AllowedNetworks); err != nil {
		return nil, src.KeyError("listen.allowed_networks", err)
	}
	if len(cfg.Auth.Required) > 0 {
		if b.authReq, err = policy.NetworkRules(cfg.Auth.Required); err != nil {
			return nil, src.KeyError("auth.required", err)
		}
	}
	if b.tokens, b.oauth, err = tokenSources(cfg, log); err != nil {
		key := "upstream"
		var ue upstreamError
		if errors.As(err, &ue) {
			key = fmt.Sprintf("upstream[%d]", ue.i)
		}
		return nil, src.KeyError(key, err)
	}
	b.client, err = deliver.NewClient(upstreamOptions(cfg, cfg.Upstream, b.tokens, log))
	if err != nil {
		return nil, src.KeyError(failingUpstream(cfg, b.tokens), err)
	}
	if cfg.Listen.TLSCert != "" && cfg.Listen.TLSCert != config.TLSCertAuto {
		b.tls, err = smtpd.LoadTLS(inboundTLSFiles(cfg))
		if err != nil {
			return nil, src.KeyError("listen.tls_cert", err)
		}
	}
	return b, nil
}

func upstreamOptions(cfg config.Config, ups []config.Upstream, tokens []deliver.TokenSource, log *slog.Logger) deliver.ClientOptions {
	return deliver.ClientOptions{Hostname: cfg.Hostname, Upstreams: ups, Delivery: cfg.Delivery, Logger: log, Tokens: tokens}
}

// failingUpstream is the key of the first upstream whose files do not
// load, so the error points at its [[upstream]] table.
func failingUpstream(cfg config.Config, tokens []deliver.TokenSource) string {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for i := range cfg.Upstream {
		if _, err := deliver.NewClient(upstreamOptions(cfg, cfg.Upstream[i:i+1], tokens[i:i+1], quiet)); err != nil {
			return fmt.Sprintf("upstream[%d]", i)
		}
	}
	return "upstream"
}

func inboundTLSFiles(cfg config.Config) smtpd.TLSFiles {
	return smtpd.TLSFiles{Cert: cfg.Listen.TLSCert, Key: cfg.Listen.TLSKey, Dir: cfg.TLSDir(),
		Hostname: cfg.Hostname, Profile: cfg.Listen.TLSProfile}
}

// listenerOptions is the listener's policy from cfg; run and reload share it.
func (b *built) listenerOptions() smtpd.Options {
	cfg := b.cfg
	return smtpd.Options{
		Hostname:             cfg.Hostname,
		Rules:                b.rules,
		Networks:             b.nets,
		Sender:               cfg.Policy.Sender,
		MaxMessageSize:       int64(cfg.Listen.MaxMessageSize),
		MaxRecipients:        cfg.Listen.MaxRecipients,
		MaxConnections:       cfg.Listen.MaxConnections,
		IdleTimeout:          cfg.Listen.IdleTimeout.D(),
		CommandTimeout:       cfg.Listen.CommandTimeout.D(),
		SessionTimeout:       cfg.Listen.SessionTimeout.D(),
		MinDataRate:          int64(cfg.Listen.MinDataRate),
		StressTimeout:        cfg.Listen.StressTimeout.D(),
		Auth:                 authOptions(cfg.Auth),
		AuthRequired:         b.authReq,
		RewriteFromHeader:    cfg.Policy.RewriteFromHeader,
		Devices:              smtpdDevices(cfg.Devices),
		PerClientConnections: cfg.Listen.PerClientConnections,
		PerClientRate:        cfg.Listen.PerClientRate,
		PerClientBurst:       cfg.Listen.PerClientBurst,
		DuplicateMax:         cfg.Duplicates.MaxRepeats,
		DuplicateWindow:      cfg.Duplicates.Window.D(),
	}
}

// schedulerOptions is the scheduler's part of cfg; the daemon adds the
// store and hooks.
func (b *built) schedulerOptions() deliver.SchedulerOptions {
	cfg := b.cfg
	return deliver.SchedulerOptions{
		Dialer:       b.client,
		Connections:  cfg.Delivery.Connections,
		MinBackoff:   cfg.Delivery.MinBackoff.D(),
		MaxBackoff:   cfg.Delivery.MaxBackoff.D(),
		IdleClose:    cfg.Delivery.IdleClose.D(),
		UpstreamHold: cfg.Delivery.UpstreamHold.D(),
		MaxAge:       cfg.Queue.MaxAge.D(),
		Notify:       cfg.Queue.Notify,
		Hostname:     cfg.Hostname,
	}
}

func (b *built) upstreamNames() []string {
	var names []string
	for _, u := range b.cfg.Upstream {
		names = append(names, u.Address)
	}
	return names
}
