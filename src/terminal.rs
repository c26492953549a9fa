//! The line editor for a terminal, the Console's [`Screen`] there: rustyline reads one line on
//! its own thread each time the Console asks, with the Console's prompt, and a printer thread
//! puts the Console's lines above the line being typed (rustyline's ExternalPrinter). The
//! Console's note (unread chats) is drawn on the right of the row where the line being typed
//! ends by the editor's [`NoteBeside`] helper, redrawn with the line on each print and key.

use std::borrow::Cow;
use std::cell::RefCell;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;

use futures::channel::mpsc;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{
    Cmd, ColorMode, ConditionalEventHandler, Config, Editor, Event, EventContext, EventHandler,
    ExternalPrinter, GraphemeClusterMode, Helper, KeyEvent, Movement, RepeatCount,
};
use unicode_segmentation::UnicodeSegmentation;

use peerchat_actors::console::{display_width, InputLine, Screen, Written};

type LineEditor = Editor<NoteBeside, DefaultHistory>;

/// The pieces main.rs hands out: the screen to the Console, the lines to its input, the
/// guard kept to give the terminal back at the end.
pub struct Terminal {
    pub screen: EditorScreen,
    pub lines: mpsc::UnboundedReceiver<InputLine>,
    pub guard: TerminalGuard,
}

/// Starts the editor and printer threads. Fails when rustyline cannot edit here (e.g.
/// `TERM=dumb`); main.rs then falls back to plain lines. Ctrl-C at the prompt is sent on
/// `interrupts`, like SIGINT.
pub fn start(
    history: Option<PathBuf>,
    interrupts: mpsc::UnboundedSender<()>,
) -> Result<Terminal, String> {
    // Taken before rustyline touches the terminal: the mode to give back at the end.
    let saved = SavedMode::take();
    let config = Config::builder()
        .auto_add_history(false)
        .history_ignore_space(true)
        .history_ignore_dups(true)
        .and_then(|c| c.max_history_size(1000))
        .map_err(|e| e.to_string())?
        // The helper's note is drawn through rustyline's highlighter, which it calls only
        // with colours on; the note is coloured (or not) by the Console's Look, NO_COLOR
        // included, and nothing else is highlighted.
        .color_mode(ColorMode::Forced)
        .build();
    // How rustyline counts a grapheme's columns here: the note is placed by the same count.
    let graphemes = config.grapheme_cluster_mode();
    let mut editor = LineEditor::with_config(config).map_err(|e| e.to_string())?;
    let (note_tx, note_rx) = std_mpsc::channel::<Vec<String>>();
    editor.set_helper(Some(NoteBeside::new(note_rx, graphemes)));
    editor.bind_sequence(
        KeyEvent::ctrl('C'),
        EventHandler::Conditional(Box::new(CtrlCClearsTheLine)),
    );
    if let Some(path) = &history {
        // A missing or unreadable history file only means no old history.
        let _ = editor.load_history(path);
    }
    let printer = editor
        .create_external_printer()
        .map_err(|e| format!("no external printer: {e}"))?;

    let reading = Arc::new(AtomicBool::new(false));
    let (ask_tx, ask_rx) = std_mpsc::channel::<String>();
    let (line_tx, line_rx) = mpsc::unbounded();
    let (print_tx, print_rx) = std_mpsc::channel::<ToPrinter>();

    let editor_reading = reading.clone();
    std::thread::Builder::new()
        .name("line-editor".into())
        .spawn(move || edit_lines(editor, ask_rx, line_tx, interrupts, history, editor_reading))
        .map_err(|e| format!("cannot start the line editor: {e}"))?;
    let printer_saved = saved.clone();
    std::thread::Builder::new()
        .name("printer".into())
        .spawn(move || print_lines(printer, print_rx, reading, printer_saved))
        .map_err(|e| format!("cannot start the printer: {e}"))?;

    Ok(Terminal {
        screen: EditorScreen {
            asks: ask_tx,
            notes: note_tx,
            prints: print_tx.clone(),
            asked: false,
        },
        lines: line_rx,
        guard: TerminalGuard {
            prints: print_tx,
            saved,
        },
    })
}

/// What the printer thread is told.
enum ToPrinter {
    /// Lines to put above the prompt (with their line end).
    Print(String),
    /// The Console quits: from now on write straight to stdout.
    Close,
    /// Say when everything before this is written.
    Flush(std_mpsc::Sender<()>),
    /// The same, to the Console (chats are acked once shown).
    Written(futures::channel::oneshot::Sender<()>),
}

/// The Console's [`Screen`] on a terminal.
pub struct EditorScreen {
    asks: std_mpsc::Sender<String>,
    /// To the editor's [`NoteBeside`]: sent before the print that makes the editor redraw.
    notes: std_mpsc::Sender<Vec<String>>,
    prints: std_mpsc::Sender<ToPrinter>,
    /// A prompt was sent to the editor and its line has not come back: asking again would
    /// queue a second readline.
    asked: bool,
}

impl Screen for EditorScreen {
    fn print(&mut self, text: &str) {
        let _ = self.prints.send(ToPrinter::Print(format!("{text}\n")));
    }

    fn prompt(&mut self, prompt: &str) {
        // rustyline redraws its own prompt after each print; only a new question is sent.
        if !self.asked && self.asks.send(prompt.to_string()).is_ok() {
            self.asked = true;
        }
    }

    fn answered(&mut self) {
        self.asked = false;
    }

    fn note(&mut self, forms: &[String]) {
        let _ = self.notes.send(forms.to_vec());
    }

    fn close(&mut self) {
        let _ = self.prints.send(ToPrinter::Close);
    }

    fn width(&self) -> Option<usize> {
        // Asked on each print, so a resized window wraps at its new width.
        terminal_size::terminal_size().map(|(width, _)| usize::from(width.0))
    }

    fn interactive(&self) -> bool {
        true
    }

    fn written(&mut self) -> Written {
        let (done, written) = futures::channel::oneshot::channel();
        if self.prints.send(ToPrinter::Written(done)).is_err() {
            return Box::pin(std::future::ready(()));
        }
        Box::pin(async move {
            let _ = written.await;
        })
    }
}

/// Gives the terminal back as it was found.
pub struct TerminalGuard {
    prints: std_mpsc::Sender<ToPrinter>,
    saved: SavedMode,
}

impl TerminalGuard {
    /// Waits (a little, at most) until every line sent to the printer is out, then restores
    /// the terminal's mode in case the editor was still reading (quit by a signal).
    pub fn finish(&self) {
        let (tx, rx) = std_mpsc::channel();
        if self.prints.send(ToPrinter::Flush(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
        self.saved.restore();
    }

    /// Restores the terminal's mode when called, for an exit that cannot wait.
    pub fn restorer(&self) -> impl Fn() + 'static {
        let saved = self.saved.clone();
        move || saved.restore()
    }
}

/// Ctrl-C on a line with text clears it, as in a shell; on an empty line it is the usual
/// interrupt (main.rs quits, and a second one quits at once).
struct CtrlCClearsTheLine;

impl ConditionalEventHandler for CtrlCClearsTheLine {
    fn handle(&self, _: &Event, _: RepeatCount, _: bool, ctx: &EventContext) -> Option<Cmd> {
        (!ctx.line().is_empty()).then_some(Cmd::Kill(Movement::WholeLine))
    }
}

/// The editor's helper: draws the Console's note (unread chats) at the right of the row where
/// the line being typed ends, in the fullest of its forms that fits there (see [`with_note`]);
/// never on the line left behind by Enter. rustyline keeps the prompt it was given for the
/// whole read and puts the cursor by that prompt's width, so a longer prompt would misplace
/// it: the note is drawn without moving the cursor instead (saved, moved right, written,
/// restored), on each redraw of the line, which each print above it and each key makes.
pub struct NoteBeside {
    state: RefCell<NoteState>,
}

struct NoteState {
    /// From the Console's screen; the last one sent is the one shown.
    notes: std_mpsc::Receiver<Vec<String>>,
    /// The note's forms, fullest first; none when there is no note.
    note: Vec<String>,
    /// Columns of the prompt being drawn (rustyline draws it just before the line).
    prompt_width: usize,
    /// The read's own prompt, not a history search's.
    own_prompt: bool,
    /// The line is being accepted: it is drawn once more as typed, and left behind so.
    leaving: bool,
    /// How the editor counts a grapheme's columns (its `Config`'s mode).
    graphemes: GraphemeClusterMode,
}

impl NoteBeside {
    fn new(notes: std_mpsc::Receiver<Vec<String>>, graphemes: GraphemeClusterMode) -> NoteBeside {
        NoteBeside {
            state: RefCell::new(NoteState {
                notes,
                note: Vec::new(),
                prompt_width: 0,
                own_prompt: true,
                leaving: false,
                graphemes,
            }),
        }
    }
}

impl Highlighter for NoteBeside {
    fn highlight_prompt<'b, 's: 'b, 'p: 'b>(
        &'s self,
        prompt: &'p str,
        default: bool,
    ) -> Cow<'b, str> {
        let mut state = self.state.borrow_mut();
        state.prompt_width = display_width(prompt);
        state.own_prompt = default;
        Cow::Borrowed(prompt)
    }

    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        let mut state = self.state.borrow_mut();
        while let Ok(note) = state.notes.try_recv() {
            state.note = note;
        }
        if state.leaving || !state.own_prompt || state.note.is_empty() {
            return Cow::Borrowed(line);
        }
        let cols = terminal_size::terminal_size().map(|(width, _)| usize::from(width.0));
        let row = |cols| Row {
            cols,
            graphemes: state.graphemes,
        };
        match cols.and_then(|cols| with_note(line, state.prompt_width, &state.note, row(cols))) {
            Some(drawn) => Cow::Owned(drawn),
            None => Cow::Borrowed(line),
        }
    }

    fn highlight_char(&self, _line: &str, _pos: usize, kind: CmdKind) -> bool {
        // rustyline's last redraw of an accepted line is a forced one.
        self.state.borrow_mut().leaving = kind == CmdKind::ForcedRefresh;
        // Every key redraws the whole line: a character put straight on the screen would
        // land on the note, which may come at any time. It also makes Enter redraw the line
        // without its note.
        true
    }
}

impl Completer for NoteBeside {
    type Candidate = String;
}

impl Hinter for NoteBeside {
    type Hint = String;
}

impl Validator for NoteBeside {}

impl Helper for NoteBeside {}

/// Columns kept free between the text typed and the note.
const NOTE_GAP: usize = 2;

/// Columns between tab stops, as rustyline lays out a tab (its default).
const TAB_STOP: usize = 8;

/// `line` to draw after a prompt `prompt_width` wide on a terminal `cols` wide, with the first
/// of the note's `forms` (fullest first) that fits drawn at the right of the row where the
/// line ends, the cursor left where the line ends; `None` when no form fits there.
///
/// A line longer than a row wraps, and every row but its last is full: the last one, where
/// the cursor usually is, is the only place with room. Drawing the note on a row rustyline
/// does not know of (a row of its own below the line) would need a row that may not exist
/// yet: making it would scroll the screen under rustyline, which moves the cursor by rows
/// it counted, and garble what is typed. So the note goes beside the line's end, shortened
/// when the full form does not fit; with less room than the shortest form needs (or a line
/// that just filled its row, its cursor waiting for the next) it waits for the next row.
///
/// The last column stays empty and line wrap is off while the note is written, so drawing it
/// never wraps or scrolls, whatever the terminal's real width.
fn with_note(line: &str, prompt_width: usize, forms: &[String], row: Row) -> Option<String> {
    let cols = row.cols;
    if line.contains('\n') || cols == 0 {
        return None;
    }
    let (row, end) = end_of_line(prompt_width, line, row);
    if end == 0 && row > 0 {
        // The text filled its last row: rustyline moves to the next one after drawing it.
        return None;
    }
    let note = forms.iter().find(|form| {
        cols.checked_sub(display_width(form) + 1)
            .is_some_and(|start| end + NOTE_GAP <= start)
    })?;
    let start = cols - (display_width(note) + 1);
    // The line, then DECSC, autowrap off, to column start (1-based), the note, autowrap on,
    // DECRC: the cursor is back at the line's end, where rustyline expects it.
    Some(format!(
        "{line}\x1b7\x1b[?7l\x1b[{}G{note}\x1b[?7h\x1b8",
        start + 1
    ))
}

/// A terminal row as rustyline lays it out: its width, and how it counts a grapheme's columns
/// (`GraphemeClusterMode`: rustyline picks it from `TERM_PROGRAM`/`TERM`, e.g. an emoji with
/// a variation selector is 2 columns on iTerm and 1 on most Linux terminals).
#[derive(Clone, Copy, Debug)]
struct Row {
    cols: usize,
    graphemes: GraphemeClusterMode,
}

/// Where `line`, drawn after a prompt `prompt_width` wide, ends on a terminal row: its last
/// row (0 for the prompt's row) and the column after its last grapheme, laid out as rustyline
/// lays it out (grapheme by grapheme, in its mode; a wide one that does not fit at a row's end
/// goes to the next row; a row filled exactly puts the end at column 0 of the next).
fn end_of_line(prompt_width: usize, line: &str, layout: Row) -> (usize, usize) {
    let cols = layout.cols.max(1);
    let (mut row, mut col) = (prompt_width / cols, prompt_width % cols);
    for grapheme in line.graphemes(true) {
        let width = if grapheme == "\t" {
            TAB_STOP - col % TAB_STOP
        } else {
            usize::from(layout.graphemes.width(grapheme))
        };
        col += width;
        if col > cols {
            row += 1;
            col = width;
        }
    }
    if col == cols {
        row += 1;
        col = 0;
    }
    (row, col)
}

/// The editor thread: one readline per prompt the Console sends.
fn edit_lines(
    mut editor: LineEditor,
    asks: std_mpsc::Receiver<String>,
    lines: mpsc::UnboundedSender<InputLine>,
    interrupts: mpsc::UnboundedSender<()>,
    history: Option<PathBuf>,
    reading: Arc<AtomicBool>,
) {
    // Ends when the Console is gone (its screen dropped the sender) or input ends.
    while let Ok(prompt) = asks.recv() {
        reading.store(true, Ordering::SeqCst);
        let read = editor.readline(&prompt);
        reading.store(false, Ordering::SeqCst);
        match read {
            Ok(line) => {
                if !line.trim().is_empty() {
                    let _ = editor.add_history_entry(line.as_str());
                    if let Some(path) = &history {
                        // History on disk is a convenience: failing to write it is not an error.
                        let _ = editor.save_history(path);
                    }
                }
                if lines.unbounded_send(InputLine(line)).is_err() {
                    break;
                }
            }
            // Ctrl-C quits like SIGINT: main.rs counts it with the signals.
            Err(ReadlineError::Interrupted) => {
                if interrupts.unbounded_send(()).is_err() {
                    break;
                }
            }
            // Ctrl-D on an empty line: end of input, as at the end of a pipe.
            Err(ReadlineError::Eof) => break,
            Err(err) => {
                tracing::warn!("the line editor failed: {err}");
                break;
            }
        }
    }
}

/// The printer thread. rustyline's printer may block while a readline is just finishing, so
/// it runs here rather than on the actors' thread.
fn print_lines(
    mut printer: impl ExternalPrinter,
    prints: std_mpsc::Receiver<ToPrinter>,
    reading: Arc<AtomicBool>,
    saved: SavedMode,
) {
    let mut direct = false;
    let mut next = prints.recv().ok();
    while let Some(message) = next.take() {
        match message {
            ToPrinter::Print(mut text) => {
                // Lines that queued up meanwhile go above the prompt in one print: one
                // redraw of the editor's line and one write, however many chats came in.
                loop {
                    match prints.try_recv() {
                        Ok(ToPrinter::Print(more)) => text.push_str(&more),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                // A copy per batch, not per line: kept to write directly if the editor fails.
                if direct || printer.print(text.clone()).is_err() {
                    write_out(&text);
                }
            }
            ToPrinter::Close => {
                if reading.load(Ordering::SeqCst) {
                    // Quit by a signal while the editor waits for a key: it would never give
                    // the terminal back, so do it here and leave its prompt line behind.
                    saved.restore();
                    write_out(&format!("{BRACKETED_PASTE_OFF}\n"));
                }
                direct = true;
            }
            ToPrinter::Flush(done) => {
                let _ = done.send(());
            }
            ToPrinter::Written(done) => {
                let _ = done.send(());
            }
        }
        if next.is_none() {
            next = prints.recv().ok();
        }
    }
}

/// rustyline turns bracketed paste on while it reads; a shell after us expects it off.
const BRACKETED_PASTE_OFF: &str = "\x1b[?2004l";

fn write_out(text: &str) {
    let mut out = io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// The terminal's mode (termios) as it was before the editor ran.
#[derive(Clone)]
struct SavedMode {
    #[cfg(unix)]
    termios: Option<nix::sys::termios::Termios>,
}

impl SavedMode {
    fn take() -> SavedMode {
        SavedMode {
            #[cfg(unix)]
            termios: nix::sys::termios::tcgetattr(io::stdin()).ok(),
        }
    }

    fn restore(&self) {
        #[cfg(unix)]
        if let Some(termios) = &self.termios {
            let _ = nix::sys::termios::tcsetattr(
                io::stdin(),
                nix::sys::termios::SetArg::TCSADRAIN,
                termios,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forms(full: &str, short: &str) -> Vec<String> {
        vec![full.to_string(), short.to_string()]
    }

    fn unread() -> Vec<String> {
        forms("2 unread: carol", "2 unread")
    }

    /// A row `cols` wide on a terminal that counts each character's width (most on Linux).
    fn wc(cols: usize) -> Row {
        Row {
            cols,
            graphemes: GraphemeClusterMode::WcWidth,
        }
    }

    #[test]
    fn the_note_is_drawn_at_the_right_without_moving_the_cursor() {
        let drawn = with_note("half a rep", 5, &unread(), wc(40)).unwrap();
        // 40 columns, the last kept free: the note's 15 columns start at column 25 (1-based).
        assert_eq!(
            drawn,
            "half a rep\x1b7\x1b[?7l\x1b[25G2 unread: carol\x1b[?7h\x1b8"
        );
        // What comes before the cursor's moves is the line as typed.
        assert!(drawn.starts_with("half a rep\x1b7"));
    }

    #[test]
    fn a_line_too_long_for_the_full_note_gets_the_short_one() {
        // Prompt 5 + line 10 + gap 2 = 17 columns; the full note needs 15 + 1 free, the
        // short one 8 + 1.
        let full = |cols| with_note("half a rep", 5, &unread(), wc(cols));
        assert!(full(33).unwrap().contains("2 unread: carol"));
        let short = full(32).unwrap();
        assert!(
            short.ends_with("\x1b[24G2 unread\x1b[?7h\x1b8"),
            "{short:?}"
        );
        assert!(full(26).unwrap().contains("\x1b[18G2 unread\x1b"));
        assert_eq!(full(25), None);
        // Wide characters count double; styling does not count.
        assert!(with_note("abcde", 5, &unread(), wc(28))
            .unwrap()
            .contains("2 unread: carol"));
        assert!(!with_note("日本語日本", 5, &unread(), wc(28))
            .unwrap()
            .contains("carol"));
        let styled = forms("\x1b[2m2 unread: carol\x1b[0m", "\x1b[2m2 unread\x1b[0m");
        assert!(with_note("x", 5, &styled, wc(24))
            .unwrap()
            .contains("carol"));
        assert_eq!(with_note("", 5, &unread(), wc(10)), None);
        assert_eq!(with_note("a\nb", 5, &unread(), wc(200)), None);
        assert_eq!(with_note("abc", 5, &[], wc(200)), None);
    }

    /// The bug this fixes: a line longer than the terminal's row hid the note. It now goes
    /// at the right of the row where the line ends, the row the cursor is on.
    #[test]
    fn a_line_longer_than_the_row_has_the_note_beside_its_end() {
        let line = "x".repeat(100);
        // Prompt 5 + 100 = 105 columns on 80: the second row holds 25, the note fits there.
        let drawn = with_note(&line, 5, &unread(), wc(80)).unwrap();
        assert_eq!(
            drawn,
            format!("{line}\x1b7\x1b[?7l\x1b[65G2 unread: carol\x1b[?7h\x1b8")
        );
        // Ending near the right of its row: the short form, then nothing until the next row.
        let long = "x".repeat(140); // 145 columns: 65 on the second row
        assert!(with_note(&long, 5, &unread(), wc(80))
            .unwrap()
            .contains("\x1b[72G2 unread\x1b"));
        assert_eq!(with_note(&"x".repeat(145), 5, &unread(), wc(80)), None);
        // A line that just filled its row: the cursor waits for the next row, nothing drawn.
        assert_eq!(with_note(&"x".repeat(155), 5, &unread(), wc(80)), None);
        // The row after: the full note again.
        assert!(with_note(&"x".repeat(156), 5, &unread(), wc(80))
            .unwrap()
            .contains("carol"));
    }

    #[test]
    fn the_line_ends_where_rustyline_puts_it() {
        assert_eq!(end_of_line(5, "abc", wc(80)), (0, 8));
        assert_eq!(end_of_line(5, &"x".repeat(75), wc(80)), (1, 0));
        assert_eq!(end_of_line(5, &"x".repeat(76), wc(80)), (1, 1));
        // A wide character that does not fit at a row's end goes to the next row whole.
        assert_eq!(
            end_of_line(0, &format!("{}日", "x".repeat(9)), wc(10)),
            (1, 2)
        );
        assert_eq!(
            end_of_line(0, &format!("{}日", "x".repeat(8)), wc(10)),
            (1, 0)
        );
        // A tab goes to the next stop.
        assert_eq!(end_of_line(5, "\tab", wc(80)), (0, 10));
        // A prompt wider than the row.
        assert_eq!(end_of_line(85, "ab", wc(80)), (1, 7));
    }

    #[test]
    fn the_line_is_measured_as_the_editor_measures_graphemes() {
        // A heart with its emoji variation selector: 1 column to a terminal that counts
        // characters, 2 to one that shapes graphemes (iTerm, WezTerm, Apple's Terminal).
        let hearts = "\u{2764}\u{fe0f}".repeat(12);
        assert_eq!(end_of_line(5, &hearts, wc(40)), (0, 17));
        let shaping = Row {
            cols: 40,
            graphemes: GraphemeClusterMode::Unicode,
        };
        assert_eq!(end_of_line(5, &hearts, shaping), (0, 29));
        // So the note keeps its gap after the last heart on either: the full form fits
        // after column 17, only the short one after column 29.
        let drawn = with_note(&hearts, 5, &unread(), wc(40)).unwrap();
        assert!(drawn.contains("\x1b[25G2 unread: carol"), "{drawn:?}");
        let drawn = with_note(&hearts, 5, &unread(), shaping).unwrap();
        assert!(drawn.contains("\x1b[32G2 unread\x1b"), "{drawn:?}");
        // A waving hand with a skin tone: one grapheme, 2 columns when shaped, not 4.
        let wave = "\u{1f44b}\u{1f3ff}";
        assert_eq!(end_of_line(0, wave, shaping), (0, 2));
        assert_eq!(end_of_line(0, wave, wc(40)), (0, 4));
    }
}
