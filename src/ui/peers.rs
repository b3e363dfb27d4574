//! The status pane: ourselves (name, endpoints, NAT, server) and each peer (online or offline,
//! endpoint in use, round trip, last seen), plus the count of dropped datagrams.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};

use super::history::{hanging_indent, wrap};
use super::theme;
use crate::app::Model;
use crate::app::model::ServerState;
use crate::app::texts;
use crate::text::sanitize;

fn fact(label: &str, value: String) -> Line<'static> {
    Line::from(vec![Span::raw(format!(" {label:<7}")), Span::styled(value, theme::detail())])
}

/// Draws the pane.
pub fn render(model: &Model, frame: &mut Frame, area: Rect) {
    let me = &model.me;
    let mut lines = vec![
        Line::from(vec![
            Span::styled("You ", theme::heading()),
            Span::styled(sanitize(&me.name), theme::own()),
        ]),
        fact("local", me.local.to_string()),
        fact("public", texts::public(&me.public)),
        fact("NAT", texts::nat(me.nat.as_deref(), &me.public)),
    ];
    if let Some(server) = &me.server {
        let state = match &server.state {
            ServerState::Registering => "registering…".to_owned(),
            ServerState::Registered => "✓ registered".to_owned(),
            ServerState::Silent => "✗ not answering".to_owned(),
            ServerState::Refused(reason) => format!("✗ refused: {reason}"),
        };
        lines.push(fact("server", server.addr.to_string()));
        lines.push(fact("", state));
        lines.push(fact("room", sanitize(&server.room)));
    }
    lines.push(Line::default());
    lines.push(Line::styled("Peers", theme::heading()));
    if model.peers.is_empty() {
        lines.push(Line::styled(" none yet", theme::detail()));
    }
    for peer in &model.peers {
        let (dot, dot_style, state) = if peer.online {
            ("●", theme::online(), "online")
        } else {
            ("○", theme::offline(), "offline")
        };
        lines.push(Line::from(vec![
            Span::styled(format!(" {dot} "), dot_style),
            Span::styled(sanitize(&peer.name), theme::peer(&peer.name)),
            Span::styled(format!(" {state}"), dot_style),
        ]));
        if let Some(addr) = peer.addr {
            lines.push(Line::styled(format!("   via {addr}"), theme::detail()));
        }
        if let Some(path) = peer.path.filter(|_| peer.online) {
            let mut line = format!("   {}", path.as_str());
            if let Some(rtt) = peer.rtt {
                line.push_str(&format!(" · rtt {}", texts::rtt(rtt)));
            }
            lines.push(Line::styled(line, theme::detail()));
        }
        if let Some(nat) = &peer.nat {
            lines.push(Line::styled(format!("   NAT {}", sanitize(nat)), theme::detail()));
        }
        let seen = match peer.last_seen {
            Some(seen) => format!("   seen {}", texts::ago(model.now, seen)),
            None => "   never seen".to_owned(),
        };
        lines.push(Line::styled(seen, theme::detail()));
    }
    let dropped = model.drops.suspicious();
    let unreadable = model.paging.unreadable.len();
    if dropped > 0 || unreadable > 0 {
        lines.push(Line::default());
    }
    if dropped > 0 {
        lines.push(Line::styled(texts::dropped(dropped), theme::offline()));
    }
    if unreadable > 0 {
        lines.push(Line::styled(texts::skipped_lines(unreadable), theme::offline()));
    }
    let block = Block::bordered().title(" status ").border_style(theme::border());
    // Wrapped facts go on under their value, not under their label.
    let width = usize::from(block.inner(area).width);
    let rows: Vec<Line<'static>> = lines
        .into_iter()
        .flat_map(|line| {
            let style = line.style;
            let pieces: Vec<(String, ratatui::style::Style)> =
                line.spans.iter().map(|s| (s.content.to_string(), style.patch(s.style))).collect();
            let text: String = pieces.iter().map(|(t, _)| t.as_str()).collect();
            wrap(&pieces, width, hanging_indent(&text))
        })
        .collect();
    frame.render_widget(Paragraph::new(rows).block(block), area);
}
