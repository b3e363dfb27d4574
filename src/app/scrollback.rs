//! The history view over a log of any length: scrolling within the loaded window, asking for
//! older or newer pages before the view reaches the window's edge, letting the far end of the
//! window go so it stays bounded, and search: jumping between matches anywhere in the log.
//! Pure, like `update`: reads are asked for as `Effect::Load` and arrive as `Message::Loaded`.

use std::collections::HashMap;

use super::message::{Effect, Load};
use super::model::{Entry, EntryKind, Model, Origin, Search, entries_from_page, set_delivery};
use super::texts;
use crate::consts::{HISTORY_PREFETCH_SCREENS, HISTORY_WINDOW_ENTRIES};
use crate::history::{Delivery, Found, Page};
use crate::ui;

/// Rows in the history pane.
fn height(model: &Model) -> usize {
    usize::from(ui::history_height(model))
}

/// Scrolls `rows` back (positive) or forward (negative) within the window, then makes sure
/// the next pages in that direction are on their way.
pub fn scroll_by(model: &mut Model, rows: i32, effects: &mut Vec<Effect>) {
    let target = if rows >= 0 {
        model.scroll.saturating_add(rows.unsigned_abs() as usize)
    } else {
        model.scroll.saturating_sub(rows.unsigned_abs() as usize)
    };
    let target = clamp_scroll(model, target);
    if target != model.scroll {
        model.scroll = target;
        model.dirty = true;
    }
    if model.scroll == 0 && model.unread > 0 && model.paging.newer.is_none() {
        model.unread = 0;
        model.dirty = true;
    }
    prefetch(model, effects);
}

/// `scroll` limited to how far back the window reaches. The newest rows (0) need no counting:
/// sending, which comes back there, costs no wrapping of the entries.
fn clamp_scroll(model: &Model, scroll: usize) -> usize {
    if scroll == 0 {
        return 0;
    }
    let height = height(model);
    let reach = ui::history::rows_up_to(model, scroll.saturating_add(height));
    scroll.min(reach.saturating_sub(height))
}

/// Goes to the newest item, reading the end of the log first if the window is elsewhere.
pub fn to_newest(model: &mut Model, effects: &mut Vec<Effect>) {
    if model.paging.newer.is_some() {
        request(model, Load::Latest, effects);
    } else {
        scroll_by(model, i32::MIN, effects);
    }
}

/// Goes to the first item of the log, reading it first if it is not loaded.
pub fn to_oldest(model: &mut Model, effects: &mut Vec<Effect>) {
    if model.paging.older.is_some() {
        request(model, Load::First, effects);
    } else {
        scroll_by(model, i32::MAX, effects);
    }
}

fn request(model: &mut Model, load: Load, effects: &mut Vec<Effect>) {
    model.paging.loading = true;
    effects.push(Effect::Load(load));
}

/// Asks for the next page when the view is within a few screens of the window's edge.
fn prefetch(model: &mut Model, effects: &mut Vec<Effect>) {
    if model.paging.loading {
        return;
    }
    let margin = HISTORY_PREFETCH_SCREENS * height(model);
    let wanted = model.scroll + height(model) + margin;
    if let Some(at) = model.paging.older
        && ui::history::rows_up_to(model, wanted) < wanted
    {
        request(model, Load::Older(at), effects);
    } else if let Some(at) = model.paging.newer
        && model.scroll < margin
    {
        request(model, Load::Newer(at), effects);
    }
}

/// Adds a new item at the end, keeping a scrolled-back view still. While the window is away
/// from the end of the log the item waits: messages are read back from the log when the view
/// returns, notices are parked until then.
pub fn push(model: &mut Model, entry: Entry) {
    let from_peer = matches!(entry.kind, EntryKind::Chat { own: false, .. });
    if model.paging.newer.is_some() {
        if entry.origin == Origin::Notice {
            model.paging.parked.push(entry);
        }
    } else {
        if model.scroll > 0 {
            model.scroll += ui::history::entry_rows(&entry, model);
        }
        model.entries.push(entry);
    }
    if from_peer && (model.scroll > 0 || model.paging.newer.is_some()) {
        model.unread += 1;
    }
    model.dirty = true;
}

/// Takes in a page asked for with `Effect::Load`.
pub fn loaded(
    model: &mut Model,
    load: Load,
    page: Result<Page, String>,
    effects: &mut Vec<Effect>,
) {
    model.paging.loading = false;
    model.dirty = true;
    let page = match page {
        Ok(page) => {
            model.paging.note_unreadable(&page);
            page
        }
        Err(error) => {
            push(model, Entry::system(model.now, texts::log_unreadable(&error)));
            return;
        }
    };
    match load {
        Load::Older(at) if model.paging.older == Some(at) => prepend(model, page),
        Load::Newer(at) if model.paging.newer == Some(at) => append(model, page),
        Load::Older(_) | Load::Newer(_) => {} // the window moved on meanwhile
        Load::Around(at) => {
            replace(model, page);
            if let Some(search) = &model.search
                && search.current_offset() == Some(at)
            {
                show_offset(model, at);
            }
        }
        Load::First => {
            replace(model, page);
            model.scroll = ui::history::max_scroll(model);
        }
        Load::Latest => {
            replace(model, page);
            model.scroll = 0;
            model.unread = 0;
        }
    }
    prefetch(model, effects);
}

/// An older page goes above the window; the window's newest items go if it grew too long.
fn prepend(model: &mut Model, page: Page) {
    model.paging.older = (page.start > 0).then_some(page.start);
    let (mut entries, unmatched) = entries_from_page(page, &mut model.paging.late);
    model.paging.remember_late(unmatched);
    entries.append(&mut model.entries);
    model.entries = entries;
    let excess = model.entries.len().saturating_sub(HISTORY_WINDOW_ENTRIES);
    if excess == 0 {
        return;
    }
    let dropped = model.entries.split_off(model.entries.len() - excess);
    let rows: usize = dropped.iter().map(|e| ui::history::entry_rows(e, model)).sum();
    model.scroll = model.scroll.saturating_sub(rows);
    // Read again from the first dropped line the log holds (items this run wrote start at
    // `live_from`); dropped notices are not in the log and are gone.
    let first_logged = dropped.iter().find_map(|e| match e.origin {
        Origin::Log(offset) => Some(offset),
        Origin::Live => Some(model.paging.live_from),
        Origin::Notice => None,
    });
    if let Some(offset) = first_logged {
        model.paging.newer = Some(offset);
    }
}

/// A newer page goes below the window; the window's oldest items go if it grew too long.
fn append(model: &mut Model, page: Page) {
    let reaches_end = page.end >= page.len;
    let (start, end, len) = (page.start, page.end, page.len);
    let (entries, unmatched) = entries_from_page(page, &mut HashMap::new());
    for id in unmatched {
        set_delivery(&mut model.entries, &id, Delivery::Delivered);
    }
    let rows: usize = entries.iter().map(|e| ui::history::entry_rows(e, model)).sum();
    model.scroll += rows;
    model.entries.extend(entries);
    model.paging.newer = (!reaches_end).then_some(end);
    if reaches_end {
        rejoin_live(model, len);
    }
    let excess = model.entries.len().saturating_sub(HISTORY_WINDOW_ENTRIES);
    if excess > 0 {
        model.entries.drain(..excess);
        model.paging.older = model.entries.iter().find_map(Entry::offset).or(Some(start));
    }
}

/// The window becomes the page (a jump).
fn replace(model: &mut Model, page: Page) {
    model.paging.late.clear();
    model.paging.older = (page.start > 0).then_some(page.start);
    let reaches_end = page.end >= page.len;
    model.paging.newer = (!reaches_end).then_some(page.end);
    let len = page.len;
    let (entries, unmatched) = entries_from_page(page, &mut HashMap::new());
    model.entries = entries;
    model.paging.remember_late(unmatched);
    if reaches_end {
        rejoin_live(model, len);
    }
}

/// The window reaches the end of the log again: new items join it, parked notices first.
fn rejoin_live(model: &mut Model, len: u64) {
    model.paging.live_from = len;
    model.entries.append(&mut model.paging.parked);
    if model.scroll == 0 {
        model.unread = 0;
    }
}

/// Takes in what `Effect::Search` found and shows the newest match.
pub fn found(
    model: &mut Model,
    term: String,
    found: Result<Found, String>,
    effects: &mut Vec<Effect>,
) {
    match found {
        Err(error) => push(model, Entry::system(model.now, texts::log_unreadable(&error))),
        Ok(found) if found.offsets.is_empty() => {
            model.search = None;
            super::update::answer(model, vec![texts::no_match(&term)], effects);
        }
        Ok(found) => {
            let current = found.offsets.len() - 1;
            let search =
                Search { term, matches: found.offsets, current, truncated: found.truncated };
            model.search = Some(search);
            show_match(model, effects);
        }
    }
    model.dirty = true;
}

/// Moves to the next older (`older`) or newer match, if there is one.
pub fn step_match(model: &mut Model, older: bool, effects: &mut Vec<Effect>) {
    let Some(search) = model.search.as_mut() else { return };
    let next = if older { search.current.checked_sub(1) } else { Some(search.current + 1) };
    match next {
        Some(index) if index < search.matches.len() => {
            search.current = index;
            show_match(model, effects);
        }
        _ => {}
    }
    model.dirty = true;
}

/// Brings the current match into view, reading the log around it when it is not loaded.
fn show_match(model: &mut Model, effects: &mut Vec<Effect>) {
    let Some(at) = model.search.as_ref().and_then(Search::current_offset) else { return };
    if model.entries.iter().any(|e| e.offset() == Some(at)) {
        show_offset(model, at);
        prefetch(model, effects);
    } else {
        request(model, Load::Around(at), effects);
    }
}

/// Scrolls so the item read from `offset` starts a third of the way down the pane.
fn show_offset(model: &mut Model, offset: u64) {
    let Some(index) = model.entries.iter().position(|e| e.offset() == Some(offset)) else {
        return;
    };
    let from_bottom: usize =
        model.entries[index..].iter().map(|e| ui::history::entry_rows(e, model)).sum();
    let height = height(model);
    let target = from_bottom.saturating_sub(height - height / 3);
    model.scroll = clamp_scroll(model, target);
    model.dirty = true;
}

#[cfg(test)]
mod tests;
