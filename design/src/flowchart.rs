//! The flowchart of a service: an SVG an analyst reads to see what the graph they defined does.
//!
//! The layout is layered (Sugiyama style): loops are broken by reversing the back edges a
//! depth-first search from the first step finds, each step goes on the layer of the longest
//! path reaching it, long edges pass through virtual points on the layers they cross, and
//! barycenter sweeps order each layer to reduce crossings. Back edges (a reject sending a
//! process to an earlier step) are drawn as curved paths on the right-hand side.
//!
//! Output is deterministic (the same service always yields the same bytes) so it can be
//! cached and compared. This module must never do I/O or depend on a renderer: it estimates
//! text widths itself (1em per CJK character, 0.6em per ASCII one), and it must never let a
//! definition's text reach the SVG unescaped. It draws invalid services as best it can
//! (transitions naming no step are skipped); refusing them is `service_check`'s job.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use crate::service::{Service, Step, StepKind, Transition, TransitionAttribute};

/// Fonts that carry Simplified Chinese on Linux, macOS and Windows, then whatever is there.
const FONT_FAMILY: &str =
    "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif";
/// Step labels.
const LABEL_SIZE: f64 = 14.0;
/// The small kind tag above a step's label.
const TAG_SIZE: f64 = 11.0;
/// Transition labels.
const EDGE_SIZE: f64 = 12.0;
/// Horizontal space between two boxes of a layer.
const GAP_X: f64 = 48.0;
/// Vertical space between layers (room for a transition label).
const GAP_Y: f64 = 72.0;
/// Space around the drawing.
const MARGIN: f64 = 24.0;
/// The width a long edge reserves on a layer it crosses.
const DUMMY_WIDTH: f64 = 16.0;
/// Space between two back-edge lanes (besides their labels).
const LANE_GAP: f64 = 20.0;
/// The longest transition label drawn, in characters.
const MAX_EDGE_LABEL: usize = 24;
/// Space above the first layer for the start marker.
const START_SPACE: f64 = 34.0;
/// Barycenter rounds (each one a downward and an upward sweep).
const ORDER_ROUNDS: usize = 4;

const EDGE_COLOR: &str = "#546e7a";
const REJECT_COLOR: &str = "#c62828";

/// The layer of every step, in declaration order: 0 for the first step (and for steps nothing
/// leads to), otherwise the length of the longest path reaching it once loops are broken.
///
/// Exposed so the drawing's main promise — every forward transition goes down at least one
/// layer — can be tested without parsing SVG.
pub fn layers(service: &Service) -> Vec<(String, usize)> {
    let graph = Graph::new(service);
    service
        .steps
        .iter()
        .zip(graph.layer)
        .map(|(step, layer)| (step.name.clone(), layer))
        .collect()
}

/// The flowchart of `service` as a standalone SVG document (with `xmlns`, a `viewBox` and the
/// service's Chinese label as `<title>`).
pub fn flowchart_svg(service: &Service) -> String {
    flowchart_svg_marked(service, &Marks::default())
}

/// Where one process is on its service's flowchart: the steps it is at now (outlined) and
/// those it has been through (a dot), so a reader of the process sees its way so far.
#[derive(Debug, Clone, Default)]
pub struct Marks {
    /// The steps the process is at (several inside parallel branches).
    pub current: Vec<String>,
    /// The steps it has entered before.
    pub visited: Vec<String>,
}

/// [`flowchart_svg`] with `marks` drawn on it: the same layout, so the marked chart of a
/// process lines up with its service's.
pub fn flowchart_svg_marked(service: &Service, marks: &Marks) -> String {
    let graph = Graph::new(service);
    let layout = Layout::new(service, &graph);
    layout.render(service, &graph, marks)
}

/// The outline of a step a process is at, and the dot of one it went through.
const HERE_COLOR: &str = "#ff6f00";
const VISITED_COLOR: &str = "#43a047";

fn render_marks(step: &Step, v: &Vertex, marks: &Marks, out: &mut String) {
    let (left, top, w, h) = (v.x - v.width / 2.0, v.y, v.width, v.height);
    if marks.current.contains(&step.name) {
        let _ = write!(
            out,
            r#"<rect class="here" data-step="{}" x="{}" y="{}" width="{}" height="{}" rx="10" fill="none" stroke="{HERE_COLOR}" stroke-width="3"/>"#,
            escape(&step.name),
            num(left - 5.0),
            num(top - 5.0),
            num(w + 10.0),
            num(h + 10.0)
        );
    } else if marks.visited.contains(&step.name) {
        let _ = write!(
            out,
            r#"<circle class="visited" data-step="{}" cx="{}" cy="{}" r="5" fill="{VISITED_COLOR}"/>"#,
            escape(&step.name),
            num(left + w - 2.0),
            num(top + 2.0)
        );
    }
}

/// A transition drawn as an edge between two steps (by index).
#[derive(Debug, Clone, Copy)]
struct Edge {
    transition: usize,
    from: usize,
    to: usize,
    /// Closes a loop (found by the depth-first search); drawn on the side, not layered.
    back: bool,
}

/// The steps and drawable transitions, with loops broken and layers assigned.
struct Graph {
    edges: Vec<Edge>,
    layer: Vec<usize>,
}

impl Graph {
    fn new(service: &Service) -> Self {
        let n = service.steps.len();
        let mut index: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, step) in service.steps.iter().enumerate() {
            index.entry(step.name.as_str()).or_insert(i);
        }
        let mut edges: Vec<Edge> = service
            .transitions
            .iter()
            .enumerate()
            .filter_map(|(transition, t)| {
                Some(Edge {
                    transition,
                    from: *index.get(t.from.as_str())?,
                    to: *index.get(t.to.as_str())?,
                    back: false,
                })
            })
            .collect();
        let rejects: Vec<bool> = edges
            .iter()
            .map(|e| {
                service.transitions[e.transition].attribute == Some(TransitionAttribute::Reject)
            })
            .collect();
        mark_back_edges(n, &mut edges, &rejects);
        let layer = longest_path_layers(n, &edges);
        Graph { edges, layer }
    }
}

/// Finds the edges that close loops, preferring rejects: a reject is what an analyst draws to
/// send a process back, so the layout should read it as going back.
///
/// First a depth-first search from the first step (then from any step not yet seen, in
/// declaration order) over every edge but the rejects: an edge to a step still on the search
/// stack closes a loop. Then each reject, in declaration order, is a back edge exactly when
/// its target already leads to its source.
fn mark_back_edges(n: usize, edges: &mut [Edge], rejects: &[bool]) {
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, edge) in edges.iter().enumerate() {
        if !rejects[e] {
            out[edge.from].push(e);
        }
    }
    #[derive(Clone, Copy, PartialEq)]
    enum Seen {
        No,
        OnStack,
        Done,
    }
    let mut seen = vec![Seen::No; n];
    for root in 0..n {
        if seen[root] != Seen::No {
            continue;
        }
        seen[root] = Seen::OnStack;
        let mut stack: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(top) = stack.last_mut() {
            let (u, next) = *top;
            match out[u].get(next) {
                Some(&e) => {
                    top.1 += 1;
                    let v = edges[e].to;
                    match seen[v] {
                        Seen::No => {
                            seen[v] = Seen::OnStack;
                            stack.push((v, 0));
                        }
                        Seen::OnStack => edges[e].back = true,
                        Seen::Done => {}
                    }
                }
                None => {
                    seen[u] = Seen::Done;
                    stack.pop();
                }
            }
        }
    }
    let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (e, edge) in edges.iter().enumerate() {
        if !rejects[e] && !edge.back {
            forward[edge.from].push(edge.to);
        }
    }
    for (e, edge) in edges.iter_mut().enumerate() {
        if !rejects[e] {
            continue;
        }
        if leads_to(&forward, edge.to, edge.from) {
            edge.back = true;
        } else {
            forward[edge.from].push(edge.to);
        }
    }
}

/// Whether `to` can be reached from `from` (or is `from`) along `next`.
fn leads_to(next: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; next.len()];
    let mut stack = vec![from];
    while let Some(u) = stack.pop() {
        if u == to {
            return true;
        }
        if !std::mem::replace(&mut seen[u], true) {
            stack.extend(&next[u]);
        }
    }
    false
}

/// Longest-path layering over the forward edges (a DAG once back edges are set aside).
fn longest_path_layers(n: usize, edges: &[Edge]) -> Vec<usize> {
    let mut layer = vec![0; n];
    let mut indegree = vec![0usize; n];
    let mut out: Vec<Vec<usize>> = vec![Vec::new(); n];
    for edge in edges.iter().filter(|e| !e.back) {
        indegree[edge.to] += 1;
        out[edge.from].push(edge.to);
    }
    let mut queue: VecDeque<usize> = (0..n).filter(|&i| indegree[i] == 0).collect();
    while let Some(u) = queue.pop_front() {
        for &v in &out[u] {
            layer[v] = layer[v].max(layer[u] + 1);
            indegree[v] -= 1;
            if indegree[v] == 0 {
                queue.push_back(v);
            }
        }
    }
    layer
}

/// How a step is drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    /// Human, automatic, sub-service: a rounded box with a kind tag.
    Task,
    /// A wait: a dashed rounded box with an hourglass.
    Wait,
    /// An exclusive gateway.
    Diamond,
    /// A parallel split or join.
    Bar,
    /// An end.
    Circle,
}

/// A point of the layered graph: a step, or a virtual point a long edge passes through.
#[derive(Debug, Clone)]
struct Vertex {
    step: Option<usize>,
    layer: usize,
    width: f64,
    height: f64,
    /// Center.
    x: f64,
    /// Top.
    y: f64,
}

impl Vertex {
    fn bottom(&self) -> f64 {
        self.y + self.height
    }
    fn middle(&self) -> f64 {
        self.y + self.height / 2.0
    }
    fn right(&self) -> f64 {
        self.x + self.width / 2.0
    }
}

/// The smallest rectangle holding everything drawn.
#[derive(Debug, Clone, Copy)]
struct Bounds {
    min_x: f64,
    min_y: f64,
    max_x: f64,
    max_y: f64,
}

impl Bounds {
    fn include(&mut self, x: f64, y: f64) {
        self.min_x = self.min_x.min(x);
        self.min_y = self.min_y.min(y);
        self.max_x = self.max_x.max(x);
        self.max_y = self.max_y.max(y);
    }
}

/// Positions of every vertex, and the vertex chain each forward edge follows.
struct Layout {
    vertices: Vec<Vertex>,
    /// Per edge (same index as `Graph::edges`): the vertices it passes, source to target
    /// (empty for back edges).
    chains: Vec<Vec<usize>>,
    /// The top and height of each layer.
    rows: Vec<(f64, f64)>,
}

impl Layout {
    fn new(service: &Service, graph: &Graph) -> Self {
        let mut vertices: Vec<Vertex> = service
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| {
                let (width, height) = node_size(step);
                Vertex {
                    step: Some(i),
                    layer: graph.layer[i],
                    width,
                    height,
                    x: 0.0,
                    y: 0.0,
                }
            })
            .collect();
        let mut chains = Vec::with_capacity(graph.edges.len());
        for edge in &graph.edges {
            if edge.back {
                chains.push(Vec::new());
                continue;
            }
            let mut chain = vec![edge.from];
            // The first virtual point reserves room for the edge's label, drawn just above it.
            let label_width = edge_label(&service.transitions[edge.transition])
                .map(|l| text_width(&l, EDGE_SIZE) + 8.0)
                .unwrap_or(0.0);
            for layer in graph.layer[edge.from] + 1..graph.layer[edge.to] {
                let first = layer == graph.layer[edge.from] + 1;
                vertices.push(Vertex {
                    step: None,
                    layer,
                    width: if first {
                        DUMMY_WIDTH.max(label_width)
                    } else {
                        DUMMY_WIDTH
                    },
                    height: 0.0,
                    x: 0.0,
                    y: 0.0,
                });
                chain.push(vertices.len() - 1);
            }
            chain.push(edge.to);
            chains.push(chain);
        }
        let depth = vertices.iter().map(|v| v.layer + 1).max().unwrap_or(0);
        let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
        for (v, vertex) in vertices.iter().enumerate() {
            order[vertex.layer].push(v);
        }
        let mut above: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
        let mut below: Vec<Vec<usize>> = vec![Vec::new(); vertices.len()];
        for chain in &chains {
            for pair in chain.windows(2) {
                below[pair[0]].push(pair[1]);
                above[pair[1]].push(pair[0]);
            }
        }
        reduce_crossings(&mut order, &above, &below, vertices.len());

        let row_widths: Vec<f64> = order
            .iter()
            .map(|row| {
                row.iter().map(|&v| vertices[v].width).sum::<f64>()
                    + GAP_X * row.len().saturating_sub(1) as f64
            })
            .collect();
        let widest = row_widths.iter().copied().fold(0.0, f64::max);
        let mut rows = Vec::with_capacity(depth);
        let mut top = MARGIN + START_SPACE;
        for (row, row_width) in order.iter().zip(&row_widths) {
            let height = row.iter().map(|&v| vertices[v].height).fold(0.0, f64::max);
            let mut left = MARGIN + (widest - row_width) / 2.0;
            for &v in row {
                let vertex = &mut vertices[v];
                vertex.x = left + vertex.width / 2.0;
                vertex.y = if vertex.step.is_some() {
                    top + (height - vertex.height) / 2.0
                } else {
                    top
                };
                if vertex.step.is_none() {
                    vertex.height = height;
                }
                left += vertex.width + GAP_X;
            }
            rows.push((top, height));
            top += height + GAP_Y;
        }
        Layout {
            vertices,
            chains,
            rows,
        }
    }

    fn render(&self, service: &Service, graph: &Graph, marks: &Marks) -> String {
        let id = marker_suffix(&service.name);
        let mut bounds = Bounds {
            min_x: 0.0,
            min_y: 0.0,
            max_x: 2.0 * MARGIN + 160.0,
            max_y: 2.0 * MARGIN + 40.0,
        };
        for v in &self.vertices {
            bounds.include(v.x - v.width / 2.0 - MARGIN, v.y - MARGIN);
            bounds.include(v.right() + MARGIN, v.bottom() + MARGIN);
        }
        let mut edges_svg = String::new();
        self.render_forward_edges(service, graph, &id, &mut edges_svg, &mut bounds);
        self.render_back_edges(service, graph, &id, &mut edges_svg, &mut bounds);
        let mut nodes_svg = String::new();
        for v in &self.vertices {
            if let Some(i) = v.step {
                render_node(&service.steps[i], v, &mut nodes_svg);
                render_marks(&service.steps[i], v, marks, &mut nodes_svg);
            }
        }
        if service.steps.is_empty() {
            let _ = write!(
                nodes_svg,
                r#"<text x="{}" y="{}" text-anchor="middle" fill="{EDGE_COLOR}">（无步骤）</text>"#,
                num(MARGIN + 80.0),
                num(MARGIN + 24.0)
            );
        }
        let start = self.render_start(&id, &mut bounds);

        let width = bounds.max_x - bounds.min_x;
        let height = bounds.max_y - bounds.min_y;
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="{} {} {} {}" width="{}" height="{}" font-family="{FONT_FAMILY}" font-size="{}">"#,
            num(bounds.min_x),
            num(bounds.min_y),
            num(width),
            num(height),
            num(width),
            num(height),
            num(LABEL_SIZE)
        );
        let _ = write!(svg, "<title>{}</title>", escape(&service.label.zh));
        let _ = write!(
            svg,
            concat!(
                "<defs>",
                r#"<marker id="arrow-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{edge}"/></marker>"#,
                r#"<marker id="arrow-reject-{id}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{reject}"/></marker>"#,
                "</defs>"
            ),
            id = id,
            edge = EDGE_COLOR,
            reject = REJECT_COLOR
        );
        let _ = write!(
            svg,
            r##"<rect x="{}" y="{}" width="{}" height="{}" fill="#ffffff"/>"##,
            num(bounds.min_x),
            num(bounds.min_y),
            num(width),
            num(height)
        );
        let _ = write!(
            svg,
            r#"<g class="transitions">{edges_svg}</g><g class="steps">{start}{nodes_svg}</g></svg>"#
        );
        svg
    }

    /// A dot and an arrow into the first step, so readers see where processes begin.
    fn render_start(&self, id: &str, bounds: &mut Bounds) -> String {
        let Some(first) = self.vertices.first() else {
            return String::new();
        };
        let cy = first.y - START_SPACE + 6.0;
        bounds.include(first.x, cy - 6.0 - MARGIN);
        format!(
            r##"<g class="start"><circle cx="{x}" cy="{cy}" r="6" fill="#263238"/><path d="M{x},{from} L{x},{to}" stroke="{EDGE_COLOR}" stroke-width="1.5" fill="none" marker-end="url(#arrow-{id})"/></g>"##,
            x = num(first.x),
            cy = num(cy),
            from = num(cy + 6.0),
            to = num(first.y),
        )
    }

    /// Forward edges: from the bottom of the source, through the virtual points of the layers
    /// they cross, into the top of the target.
    fn render_forward_edges(
        &self,
        service: &Service,
        graph: &Graph,
        id: &str,
        out: &mut String,
        bounds: &mut Bounds,
    ) {
        let (out_ports, in_ports, label_t) = self.ports(service, graph);
        for (e, edge) in graph.edges.iter().enumerate() {
            let chain = &self.chains[e];
            let (Some(&first), Some(&last)) = (chain.first(), chain.last()) else {
                continue;
            };
            let t = &service.transitions[edge.transition];
            let mut points = vec![(out_ports[e], self.vertices[first].bottom())];
            for &d in &chain[1..chain.len() - 1] {
                let (top, height) = self.rows[self.vertices[d].layer];
                points.push((self.vertices[d].x, top));
                points.push((self.vertices[d].x, top + height));
            }
            points.push((in_ports[e], self.vertices[last].y));
            let mut d = format!("M{},{}", num(points[0].0), num(points[0].1));
            for (s, pair) in points.windows(2).enumerate() {
                let ((x1, y1), (x2, y2)) = (pair[0], pair[1]);
                if s % 2 == 0 {
                    let ym = (y1 + y2) / 2.0;
                    let _ = write!(
                        d,
                        " C{},{} {},{} {},{}",
                        num(x1),
                        num(ym),
                        num(x2),
                        num(ym),
                        num(x2),
                        num(y2)
                    );
                } else {
                    let _ = write!(d, " L{},{}", num(x2), num(y2));
                }
            }
            let label_at = on_first_segment(points[0], points[1], label_t[e]);
            render_edge(t, &d, label_at, id, out, bounds);
        }
    }

    /// Where each forward edge leaves its source and enters its target: spread along boxes
    /// and bars (ordered by where the edge goes, so they do not cross at the node), at the
    /// tip of diamonds and circles.
    ///
    /// Also returns, per edge, where along its first segment its label goes: neighbouring
    /// edges leaving one step alternate between two or three heights so their labels do not
    /// collide.
    fn ports(&self, service: &Service, graph: &Graph) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let mut label_t = vec![0.5; graph.edges.len()];
        let mut out_x = vec![0.0; graph.edges.len()];
        let mut in_x = vec![0.0; graph.edges.len()];
        let mut leaving: BTreeMap<usize, Vec<(f64, usize)>> = BTreeMap::new();
        let mut entering: BTreeMap<usize, Vec<(f64, usize)>> = BTreeMap::new();
        for (e, chain) in self.chains.iter().enumerate() {
            if let (Some(&a), Some(&b)) = (chain.first(), chain.get(1)) {
                leaving.entry(a).or_default().push((self.vertices[b].x, e));
            }
            if let (Some(&z), Some(y)) = (chain.last(), chain.len().checked_sub(2)) {
                entering
                    .entry(z)
                    .or_default()
                    .push((self.vertices[chain[y]].x, e));
            }
        }
        for (ports, target, outgoing) in [(leaving, &mut out_x, true), (entering, &mut in_x, false)]
        {
            for (v, mut edges) in ports {
                edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                let heights: &[f64] = match edges.len() {
                    0 | 1 => &[0.5],
                    2 => &[0.45, 0.8],
                    _ => &[0.3, 0.58, 0.86],
                };
                if outgoing {
                    for (i, &(_, e)) in edges.iter().enumerate() {
                        label_t[e] = heights[i % heights.len()];
                    }
                }
                let vertex = &self.vertices[v];
                let spread = vertex.step.is_some_and(|i| {
                    !matches!(shape(service.steps[i].kind), Shape::Diamond | Shape::Circle)
                });
                let k = edges.len() as f64;
                let step = (vertex.width / (k + 1.0)).min(24.0);
                for (i, (_, e)) in edges.into_iter().enumerate() {
                    target[e] = if spread {
                        vertex.x + (i as f64 - (k - 1.0) / 2.0) * step
                    } else {
                        vertex.x
                    };
                }
            }
        }
        (out_x, in_x, label_t)
    }

    /// Back edges run up a lane right of everything. A step with nothing to its right in its
    /// layer is left and entered by its right side; otherwise the edge leaves by the bottom and
    /// enters by the top, through the gaps between layers, so it never runs under another
    /// step. A step looping on itself at the right edge of its layer gets a small loop.
    fn render_back_edges(
        &self,
        service: &Service,
        graph: &Graph,
        id: &str,
        out: &mut String,
        bounds: &mut Bounds,
    ) {
        let mut rightmost_x = vec![f64::MIN; self.rows.len()];
        for v in &self.vertices {
            rightmost_x[v.layer] = rightmost_x[v.layer].max(v.x);
        }
        let rightmost = |v: &Vertex| v.x >= rightmost_x[v.layer];
        let mut lane = self
            .vertices
            .iter()
            .map(Vertex::right)
            .fold(MARGIN, f64::max);
        // Small loops first: the lanes go right of them and their labels.
        let is_loop = |e: &&Edge| e.back && e.from == e.to && rightmost(&self.vertices[e.from]);
        for edge in graph.edges.iter().filter(is_loop) {
            let t = &service.transitions[edge.transition];
            let half = edge_label(t)
                .map(|l| text_width(&l, EDGE_SIZE) / 2.0 + 6.0)
                .unwrap_or(0.0);
            let vertex = &self.vertices[edge.from];
            let (x, y) = (vertex.right(), vertex.middle());
            let d = format!(
                "M{},{} C{},{} {},{} {},{}",
                num(x),
                num(y - 8.0),
                num(x + 36.0),
                num(y - 30.0),
                num(x + 36.0),
                num(y + 30.0),
                num(x),
                num(y + 8.0)
            );
            lane = lane.max(x + 26.0 + 2.0 * half);
            bounds.include(x + 40.0, y + 30.0);
            render_edge(t, &d, (x + 26.0 + half, y), id, out, bounds);
        }
        let mut previous_half = 0.0;
        for edge in graph.edges.iter().filter(|e| e.back && !is_loop(e)) {
            let t = &service.transitions[edge.transition];
            let half = edge_label(t)
                .map(|l| text_width(&l, EDGE_SIZE) / 2.0 + 6.0)
                .unwrap_or(0.0);
            let source = &self.vertices[edge.from];
            let target = &self.vertices[edge.to];
            lane += LANE_GAP + previous_half + half;
            previous_half = half;
            let mut points = Vec::with_capacity(7);
            let leave_y = if rightmost(source) {
                let y = source.middle() + 6.0;
                points.push((source.right(), y));
                y
            } else {
                let (top, height) = self.rows[source.layer];
                let x = self.side_port(service, source);
                let y = top + height + GAP_Y * 0.2;
                points.push((x, source.bottom()));
                points.push((x, y));
                y
            };
            points.push((lane, leave_y));
            let enter_y = if rightmost(target) {
                target.middle() - 6.0
            } else {
                self.rows[target.layer].0 - GAP_Y * 0.2
            };
            points.push((lane, enter_y));
            if rightmost(target) {
                points.push((target.right(), enter_y));
            } else {
                let x = self.side_port(service, target);
                points.push((x, enter_y));
                points.push((x, target.y));
            }
            bounds.include(lane + MARGIN, leave_y);
            let d = rounded_path(&points, 14.0);
            render_edge(t, &d, (lane, (leave_y + enter_y) / 2.0), id, out, bounds);
        }
    }

    /// Where a back edge leaves by the bottom or enters by the top of a step: right of the
    /// forward edges' ports on a box or bar, beside the tip of a diamond or circle.
    fn side_port(&self, service: &Service, v: &Vertex) -> f64 {
        let tip = v.step.is_some_and(|i| {
            matches!(shape(service.steps[i].kind), Shape::Diamond | Shape::Circle)
        });
        if tip {
            v.x + 6.0
        } else {
            v.right() - 14.0_f64.min(v.width / 4.0)
        }
    }
}

/// A polyline through `points` with its corners rounded (radius at most `radius`, less where
/// a segment is too short).
fn rounded_path(points: &[(f64, f64)], radius: f64) -> String {
    let Some(&(x0, y0)) = points.first() else {
        return String::new();
    };
    let mut d = format!("M{},{}", num(x0), num(y0));
    let length = |a: (f64, f64), b: (f64, f64)| ((b.0 - a.0).powi(2) + (b.1 - a.1).powi(2)).sqrt();
    let toward = |a: (f64, f64), b: (f64, f64), by: f64| {
        let l = length(a, b);
        if l == 0.0 {
            a
        } else {
            (a.0 + (b.0 - a.0) * by / l, a.1 + (b.1 - a.1) * by / l)
        }
    };
    for w in points.windows(3) {
        let (a, corner, b) = (w[0], w[1], w[2]);
        let r = radius
            .min(length(a, corner) / 2.0)
            .min(length(corner, b) / 2.0);
        let (x1, y1) = toward(corner, a, r);
        let (x2, y2) = toward(corner, b, r);
        let _ = write!(
            d,
            " L{},{} Q{},{} {},{}",
            num(x1),
            num(y1),
            num(corner.0),
            num(corner.1),
            num(x2),
            num(y2)
        );
    }
    if let Some(&(x, y)) = points.last()
        && points.len() > 1
    {
        let _ = write!(d, " L{},{}", num(x), num(y));
    }
    d
}

/// The point at `t` (0 to 1) along the curve drawn between `from` and `to` (a cubic with
/// vertical tangents at both ends, as forward edges are drawn).
fn on_first_segment(from: (f64, f64), to: (f64, f64), t: f64) -> (f64, f64) {
    let u = 1.0 - t;
    // Control points: from, (from.x, mid), (to.x, mid), to.
    let ym = (from.1 + to.1) / 2.0;
    let x = (u * u * u + 3.0 * u * u * t) * from.0 + (3.0 * u * t * t + t * t * t) * to.0;
    let y = u * u * u * from.1 + 3.0 * u * t * ym + t * t * t * to.1;
    (x, y)
}

/// Orders each layer by barycenter sweeps (down, then up), keeping the order with the fewest
/// crossings seen.
fn reduce_crossings(
    order: &mut [Vec<usize>],
    above: &[Vec<usize>],
    below: &[Vec<usize>],
    count: usize,
) {
    let mut position = vec![0usize; count];
    for row in order.iter() {
        for (p, &v) in row.iter().enumerate() {
            position[v] = p;
        }
    }
    let mut best = order.to_vec();
    let mut best_crossings = crossings(order, below, &position);
    for _ in 0..ORDER_ROUNDS {
        for row in order.iter_mut().skip(1) {
            sort_by_barycenter(row, above, &mut position);
        }
        let depth = order.len();
        for row in order.iter_mut().take(depth.saturating_sub(1)).rev() {
            sort_by_barycenter(row, below, &mut position);
        }
        let now = crossings(order, below, &position);
        if now < best_crossings {
            best_crossings = now;
            best = order.to_vec();
        }
    }
    order.clone_from_slice(&best);
}

/// Sorts one layer by the mean position of each vertex's neighbours in the adjacent layer
/// (a vertex without neighbours keeps its place); ties keep the current order.
fn sort_by_barycenter(row: &mut [usize], neighbours: &[Vec<usize>], position: &mut [usize]) {
    let mut keyed: Vec<(f64, usize, usize)> = row
        .iter()
        .map(|&v| {
            let ns = &neighbours[v];
            let key = if ns.is_empty() {
                position[v] as f64
            } else {
                ns.iter().map(|&n| position[n] as f64).sum::<f64>() / ns.len() as f64
            };
            (key, position[v], v)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    for (p, (_, _, v)) in keyed.into_iter().enumerate() {
        row[p] = v;
        position[v] = p;
    }
}

/// How many pairs of segments between consecutive layers cross.
fn crossings(order: &[Vec<usize>], below: &[Vec<usize>], position: &[usize]) -> usize {
    let mut total = 0;
    for row in order {
        let segments: Vec<(usize, usize)> = row
            .iter()
            .flat_map(|&u| below[u].iter().map(move |&v| (u, v)))
            .map(|(u, v)| (position[u], position[v]))
            .collect();
        for (i, a) in segments.iter().enumerate() {
            for b in &segments[i + 1..] {
                if (a.0 < b.0 && a.1 > b.1) || (a.0 > b.0 && a.1 < b.1) {
                    total += 1;
                }
            }
        }
    }
    total
}

fn shape(kind: StepKind) -> Shape {
    match kind {
        StepKind::Human | StepKind::Automatic | StepKind::SubService => Shape::Task,
        StepKind::Wait => Shape::Wait,
        StepKind::Exclusive => Shape::Diamond,
        StepKind::Parallel | StepKind::Join => Shape::Bar,
        StepKind::End => Shape::Circle,
    }
}

/// What a step shows as its name: its Chinese label, or its identifier when it has none.
fn step_label(step: &Step) -> &str {
    step.label
        .as_ref()
        .map(|l| l.zh.trim())
        .filter(|zh| !zh.is_empty())
        .unwrap_or(&step.name)
}

/// The small line above a box's label: what kind of step it is, and what matters about it.
fn kind_tag(step: &Step) -> Option<String> {
    let deadline = step
        .deadline
        .as_ref()
        .map(|d| format!(" · 时限 {d}"))
        .unwrap_or_default();
    match step.kind {
        StepKind::Human => Some(format!("人工{deadline}")),
        StepKind::Automatic => Some(format!("自动{deadline}")),
        StepKind::SubService => Some(format!(
            "子服务 · {}",
            step.service.as_deref().unwrap_or("?")
        )),
        StepKind::Wait => {
            let detail = step.wait.as_ref().and_then(|w| {
                w.event
                    .as_ref()
                    .map(|e| format!("事件 {e}"))
                    .or_else(|| w.after.clone())
                    .or_else(|| w.until.as_ref().map(|u| format!("直到 {u}")))
            });
            Some(match detail {
                Some(d) => truncate(&format!("等待 · {d}"), 32),
                None => "等待".to_owned(),
            })
        }
        _ => None,
    }
}

/// The width and height of a step's shape, sized to its text.
fn node_size(step: &Step) -> (f64, f64) {
    let label = text_width(step_label(step), LABEL_SIZE);
    let tag = kind_tag(step)
        .map(|t| text_width(&t, TAG_SIZE))
        .unwrap_or(0.0);
    match shape(step.kind) {
        Shape::Task => ((label.max(tag) + 28.0).max(100.0), 54.0),
        Shape::Wait => ((label.max(tag + 32.0) + 28.0).max(100.0), 54.0),
        Shape::Diamond => ((label * 1.4 + 24.0).max(80.0), 64.0),
        Shape::Bar => ((label + 32.0).max(96.0), 28.0),
        Shape::Circle => ((label + 8.0).max(44.0), 36.0 + 22.0),
    }
}

/// Draws one step inside its own group, with a tooltip listing what it needs.
fn render_node(step: &Step, v: &Vertex, out: &mut String) {
    let kind = serde_json::to_value(step.kind)
        .ok()
        .and_then(|k| k.as_str().map(str::to_owned))
        .unwrap_or_default();
    let (left, top, w, h) = (v.x - v.width / 2.0, v.y, v.width, v.height);
    let label = escape(step_label(step));
    let _ = write!(
        out,
        r#"<g class="step step-{kind}" data-step="{}"><title>{}</title>"#,
        escape(&step.name),
        escape(&tooltip(step, &kind))
    );
    // `extra` carries a stroke-width (and dashes) of its own: an attribute may appear once.
    let boxed = |out: &mut String, fill: &str, stroke: &str, extra: &str| {
        let _ = write!(
            out,
            r#"<rect x="{}" y="{}" width="{}" height="{}" rx="8" fill="{fill}" stroke="{stroke}"{extra}/>"#,
            num(left),
            num(top),
            num(w),
            num(h)
        );
    };
    match shape(step.kind) {
        Shape::Task | Shape::Wait => {
            match step.kind {
                StepKind::Human => boxed(out, "#e3f2fd", "#1e88e5", r#" stroke-width="1.5""#),
                StepKind::Automatic => boxed(out, "#e8f5e9", "#43a047", r#" stroke-width="1.5""#),
                StepKind::SubService => boxed(out, "#f3e5f5", "#8e24aa", r#" stroke-width="3""#),
                _ => {
                    boxed(
                        out,
                        "#fff8e1",
                        "#f9a825",
                        r#" stroke-width="1.5" stroke-dasharray="5 3""#,
                    );
                    // An hourglass in the top-left corner.
                    let _ = write!(
                        out,
                        r##"<path d="M{},{} h10 l-10,12 h10 z" fill="#f9a825" stroke="#f57f17" stroke-width="1"/>"##,
                        num(left + 9.0),
                        num(top + 8.0)
                    );
                }
            }
            if let Some(tag) = kind_tag(step) {
                let _ = write!(
                    out,
                    r##"<text x="{}" y="{}" text-anchor="middle" font-size="{}" fill="#607d8b">{}</text>"##,
                    num(v.x),
                    num(top + 18.0),
                    num(TAG_SIZE),
                    escape(&tag)
                );
            }
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" fill="#212121">{label}</text>"##,
                num(v.x),
                num(top + 40.0)
            );
        }
        Shape::Diamond => {
            let _ = write!(
                out,
                r##"<path d="M{},{} L{},{} L{},{} L{},{} z" fill="#fff3e0" stroke="#fb8c00" stroke-width="1.5"/>"##,
                num(v.x),
                num(top),
                num(left + w),
                num(v.middle()),
                num(v.x),
                num(top + h),
                num(left),
                num(v.middle())
            );
            let _ = write!(
                out,
                r##"<text x="{}" y="{}" text-anchor="middle" dy="0.35em" fill="#212121">{label}</text>"##,
                num(v.x),
                num(v.middle())
            );
        }
        Shape::Bar => {
            let _ = write!(
                out,
                r##"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="#455a64"/><text x="{}" y="{}" text-anchor="middle" dy="0.35em" fill="#ffffff">{label}</text>"##,
                num(left),
                num(top),
                num(w),
                num(h),
                num(v.x),
                num(v.middle())
            );
        }
        Shape::Circle => {
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{}" r="17" fill="#ffebee" stroke="{REJECT_COLOR}" stroke-width="3"/><text x="{}" y="{}" text-anchor="middle" font-size="{}" fill="#212121">{label}</text>"##,
                num(v.x),
                num(top + 18.0),
                num(v.x),
                num(top + 52.0),
                num(TAG_SIZE + 1.0)
            );
        }
    }
    out.push_str("</g>");
}

/// The tooltip of a step: its identifier and kind, who handles it, what it needs, its times.
fn tooltip(step: &Step, kind: &str) -> String {
    let mut lines = vec![format!("{} ({}, {kind})", step_label(step), step.name)];
    if let Some(o) = &step.operators {
        let mut who = Vec::new();
        if let Some(role) = &o.role {
            who.push(format!("角色 {role}"));
        }
        if let Some(skill) = &o.skill {
            who.push(format!("技能 {skill}"));
        }
        if let Some(user) = &o.user {
            who.push(format!("用户 {user}"));
        }
        if !o.users.is_empty() {
            who.push(format!("用户 {}", o.users.join(", ")));
        }
        if let Some(e) = &o.expression {
            who.push(format!("表达式 {e}"));
        }
        lines.push(format!("处理人: {}", who.join("; ")));
    }
    if !step.resources.is_empty() {
        let needs: Vec<String> = step
            .resources
            .iter()
            .map(|r| format!("{}×{}", r.resource_type, r.quantity))
            .collect();
        lines.push(format!("资源: {}", needs.join(", ")));
    }
    if let Some(m) = step.duration_minutes {
        lines.push(format!("时长: {m} 分钟"));
    }
    if let Some(d) = &step.deadline {
        lines.push(format!("时限: {d}"));
    }
    lines.join("\n")
}

/// What an edge says: its label (written for people: 初诊), else its condition (shortened),
/// else its name, else what its default or attribute means.
fn edge_label(t: &Transition) -> Option<String> {
    let text = t
        .label
        .as_ref()
        .map(|l| l.zh.trim().to_owned())
        .filter(|zh| !zh.is_empty())
        .or_else(|| t.condition.clone())
        .or_else(|| t.name.clone())
        .or_else(|| t.default.then(|| "否则".to_owned()))
        .or(match t.attribute {
            Some(TransitionAttribute::Agree) => Some("同意".to_owned()),
            Some(TransitionAttribute::Reject) => Some("驳回".to_owned()),
            _ => None,
        })?;
    Some(truncate(text.trim(), MAX_EDGE_LABEL))
}

/// Draws one edge (its path, then its label on a white plate) in its own group.
fn render_edge(
    t: &Transition,
    d: &str,
    label_at: (f64, f64),
    id: &str,
    out: &mut String,
    bounds: &mut Bounds,
) {
    let reject = t.attribute == Some(TransitionAttribute::Reject);
    let (color, marker) = if reject {
        (REJECT_COLOR, format!("arrow-reject-{id}"))
    } else {
        (EDGE_COLOR, format!("arrow-{id}"))
    };
    let dash = if t.default {
        r#" stroke-dasharray="6 4""#
    } else {
        ""
    };
    let _ = write!(
        out,
        r#"<g class="transition{}" data-from="{}" data-to="{}"><path d="{d}" fill="none" stroke="{color}" stroke-width="1.5"{dash} marker-end="url(#{marker})"/>"#,
        if reject { " reject" } else { "" },
        escape(&t.from),
        escape(&t.to)
    );
    if let Some(label) = edge_label(t) {
        let w = text_width(&label, EDGE_SIZE) + 8.0;
        let h = EDGE_SIZE + 6.0;
        let (x, y) = label_at;
        bounds.include(x - w / 2.0 - MARGIN, y - h / 2.0);
        bounds.include(x + w / 2.0 + MARGIN, y + h / 2.0);
        let _ = write!(
            out,
            r##"<rect x="{}" y="{}" width="{}" height="{}" rx="3" fill="#ffffff" fill-opacity="0.9"/><text x="{}" y="{}" text-anchor="middle" dy="0.35em" font-size="{}" fill="{color}">{}</text>"##,
            num(x - w / 2.0),
            num(y - h / 2.0),
            num(w),
            num(h),
            num(x),
            num(y),
            num(EDGE_SIZE),
            escape(&label)
        );
    }
    out.push_str("</g>");
}

/// Marker ids carry the service name so two flowcharts inlined in one page do not share them.
fn marker_suffix(name: &str) -> String {
    let cleaned: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    if cleaned.is_empty() {
        "service".to_owned()
    } else {
        cleaned
    }
}

/// The estimated width of `text` at `size`: 1em per wide (CJK) character, 0.6em per ASCII one.
fn text_width(text: &str, size: f64) -> f64 {
    text.chars()
        .map(|c| if c.is_ascii() { 0.6 } else { 1.0 })
        .sum::<f64>()
        * size
}

/// `text` cut to `max` characters, an ellipsis marking the cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

/// A coordinate with one decimal: short, and the same on every platform.
fn num(value: f64) -> String {
    let rounded = (value * 10.0).round() / 10.0;
    if rounded == 0.0 {
        "0".to_owned()
    } else if rounded.fract() == 0.0 {
        format!("{rounded:.0}")
    } else {
        format!("{rounded:.1}")
    }
}

/// Escapes text for XML content and double- or single-quoted attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::{Value as Json, json};

    use crate::service::fixtures::clinic_json;

    fn service(doc: Json) -> Service {
        serde_json::from_value(doc).unwrap()
    }

    fn clinic() -> Service {
        service(clinic_json())
    }

    /// The clinic service with a reject sending a treatment back to check-in.
    fn clinic_with_loop() -> Service {
        let mut doc = clinic_json();
        doc["transitions"].as_array_mut().unwrap().push(json!(
            {"from": "treat", "to": "checkin", "name": "redo", "attribute": "reject", "label": {"zh": "重新登记"}}
        ));
        service(doc)
    }

    /// Checks that every element is closed in order (self-closing ones aside): enough XML to
    /// know a browser will not choke on the structure.
    fn assert_well_formed(svg: &str) {
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(open) = rest.find('<') {
            let close = rest[open..].find('>').expect("unterminated tag") + open;
            let tag = &rest[open + 1..close];
            assert!(!tag.contains('<'), "'<' inside a tag: {tag}");
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "mismatched </{name}>");
            } else {
                let mut names: Vec<&str> = tag
                    .split('"')
                    .step_by(2)
                    .filter_map(|chunk| chunk.trim().rsplit(' ').next())
                    .filter_map(|attr| attr.strip_suffix('='))
                    .collect();
                let count = names.len();
                names.sort_unstable();
                names.dedup();
                assert_eq!(names.len(), count, "an attribute repeats in <{tag}>");
                if !tag.ends_with('/') {
                    stack.push(tag.split([' ', '\n']).next().unwrap());
                }
            }
            let text = &rest[close + 1..];
            let next = text.find('<').unwrap_or(text.len());
            assert!(!text[..next].contains('>'), "raw '>' in text");
            rest = text;
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    fn layer_of(layers: &[(String, usize)], name: &str) -> usize {
        layers.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn the_clinic_flowchart_is_a_standalone_svg() {
        let svg = flowchart_svg(&clinic());
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains(r#"xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains("viewBox=\""));
        assert!(svg.contains("<title>治疗就诊</title>"));
        assert!(svg.contains("Noto Sans CJK SC"));
        assert!(svg.ends_with("</svg>"));
        assert_eq!(
            svg.matches("<g ").count() + svg.matches("<g>").count(),
            svg.matches("</g>").count()
        );
        assert_well_formed(&svg);
    }

    #[test]
    fn every_step_is_labelled_in_chinese_or_by_name() {
        let svg = flowchart_svg(&clinic());
        for label in [
            "到诊登记",
            ">route<",
            ">consult<",
            ">treat<",
            ">bill<",
            ">end<",
        ] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(svg.contains("子服务 · consultation"));
        assert!(svg.contains("时限 PT2H"));
        assert!(svg.contains("laser_room×1"));
    }

    #[test]
    fn edges_carry_conditions_dashed_defaults_and_arrows() {
        let svg = flowchart_svg(&clinic());
        assert!(svg.contains("record.first_visit == t…"), "{svg}");
        assert_eq!(svg.matches(r#"stroke-dasharray="6 4""#).count(), 1);
        assert!(svg.contains("<marker id=\"arrow-treatment_visit\""));
        // Six transitions and the start arrow.
        assert_eq!(
            svg.matches("marker-end=\"url(#arrow-treatment_visit)\"")
                .count(),
            7
        );
    }

    #[test]
    fn text_is_escaped() {
        let mut doc = clinic_json();
        doc["label"]["zh"] = json!("治疗 <就诊> & \"复诊\" 'x'");
        doc["transitions"][1]["condition"] = json!("record.age < 18");
        doc["steps"][1]["label"] = json!({"zh": "a<b"});
        let svg = flowchart_svg(&service(doc));
        assert!(svg.contains("record.age &lt; 18"));
        assert!(!svg.contains("record.age < 18"));
        assert!(
            svg.contains("<title>治疗 &lt;就诊&gt; &amp; &quot;复诊&quot; &apos;x&apos;</title>")
        );
        assert!(svg.contains(">a&lt;b<"));
        assert_well_formed(&svg);
    }

    #[test]
    fn layers_increase_along_every_transition_of_a_dag() {
        let s = clinic();
        let layers = layers(&s);
        assert_eq!(
            layers,
            [
                ("checkin".to_owned(), 0),
                ("route".to_owned(), 1),
                ("consult".to_owned(), 2),
                ("treat".to_owned(), 3),
                ("bill".to_owned(), 4),
                ("end".to_owned(), 5)
            ]
        );
        for t in &s.transitions {
            assert!(
                layer_of(&layers, &t.from) < layer_of(&layers, &t.to),
                "{t:?}"
            );
        }
    }

    #[test]
    fn a_loop_back_to_an_earlier_step_keeps_the_layers_and_still_renders() {
        let looped = clinic_with_loop();
        assert_eq!(layers(&looped), layers(&clinic()));
        let svg = flowchart_svg(&looped);
        assert_well_formed(&svg);
        assert!(svg.contains("重新登记"));
        assert!(
            svg.contains(r#"<g class="transition reject" data-from="treat" data-to="checkin">"#)
        );
        assert!(svg.contains(&format!(r#"stroke="{REJECT_COLOR}""#)));
        assert!(svg.contains("url(#arrow-reject-treatment_visit)"));
        // The back edge runs on a lane right of every step.
        assert!(svg.contains(" Q"), "back edge is not curved");
    }

    #[test]
    fn a_reject_is_the_edge_read_as_going_back() {
        // The depth-first search alone would reach `consent` through the reject from `check`
        // and put it below the join; preferring rejects as back edges keeps it a branch.
        let s = service(json!({
            "label": {"zh": "术前"},
            "steps": [
                {"name": "split", "kind": "parallel"},
                {"name": "photos", "kind": "human"},
                {"name": "consent", "kind": "human"},
                {"name": "merge", "kind": "join"},
                {"name": "check", "kind": "exclusive"},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "split", "to": "photos"}, {"from": "split", "to": "consent"},
                {"from": "photos", "to": "merge"}, {"from": "consent", "to": "merge"},
                {"from": "merge", "to": "check"},
                {"from": "check", "to": "end", "default": true},
                {"from": "check", "to": "consent", "condition": "!record.ok", "attribute": "reject"}
            ]
        }));
        let layers = layers(&s);
        assert_eq!(layer_of(&layers, "photos"), 1);
        assert_eq!(layer_of(&layers, "consent"), 1);
        assert_eq!(layer_of(&layers, "merge"), 2);
        let graph = Graph::new(&s);
        let back: Vec<usize> = graph
            .edges
            .iter()
            .filter(|e| e.back)
            .map(|e| e.transition)
            .collect();
        assert_eq!(back, [6]);
        assert_well_formed(&flowchart_svg(&s));
    }

    #[test]
    fn a_self_loop_and_a_loop_into_the_start_render() {
        let svg = flowchart_svg(&service(json!({
            "name": "retry",
            "label": {"zh": "重试"},
            "steps": [
                {"name": "call", "kind": "automatic"},
                {"name": "wait", "kind": "wait", "wait": {"after": "PT10M"}},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "call", "to": "call", "name": "again", "condition": "context.tries < 3"},
                {"from": "call", "to": "wait", "condition": "context.failed"},
                {"from": "wait", "to": "call"},
                {"from": "call", "to": "end"}
            ]
        })));
        assert_well_formed(&svg);
        assert!(svg.contains("等待 · PT10M"));
        assert!(svg.contains("context.tries &lt; 3"));
    }

    #[test]
    fn long_edges_pass_through_the_layers_they_cross() {
        // bill is reached from route directly (layer 1 → 4) as well as through treat.
        let mut doc = clinic_json();
        doc["transitions"]
            .as_array_mut()
            .unwrap()
            .push(json!({"from": "route", "to": "bill", "condition": "record.prepaid"}));
        let s = service(doc);
        let graph = Graph::new(&s);
        let layout = Layout::new(&s, &graph);
        let chain = layout.chains.last().unwrap();
        assert_eq!(chain.len(), 4, "route, two virtual points, bill");
        for pair in chain.windows(2) {
            assert_eq!(
                layout.vertices[pair[0]].layer + 1,
                layout.vertices[pair[1]].layer
            );
        }
        assert_well_formed(&flowchart_svg(&s));
    }

    #[test]
    fn barycenter_ordering_removes_avoidable_crossings() {
        // a → (b, c); b → e, c → d: declared in an order that crosses, drawn without.
        let s = service(json!({
            "label": {"zh": "交叉"},
            "steps": [
                {"name": "a", "kind": "parallel"},
                {"name": "b", "kind": "human"},
                {"name": "c", "kind": "human"},
                {"name": "d", "kind": "human"},
                {"name": "e", "kind": "human"},
                {"name": "j", "kind": "join"},
                {"name": "end", "kind": "end"}
            ],
            "transitions": [
                {"from": "a", "to": "b"}, {"from": "a", "to": "c"},
                {"from": "b", "to": "e"}, {"from": "c", "to": "d"},
                {"from": "d", "to": "j"}, {"from": "e", "to": "j"},
                {"from": "j", "to": "end"}
            ]
        }));
        let graph = Graph::new(&s);
        let layout = Layout::new(&s, &graph);
        let x = |i: usize| layout.vertices[i].x;
        assert_eq!(
            x(1) < x(2),
            x(4) < x(3),
            "b/c and their successors e/d are ordered alike"
        );
    }

    #[test]
    fn every_kind_has_its_shape() {
        let svg = flowchart_svg(&service(json!({
            "label": {"zh": "全部"},
            "steps": [
                {"name": "split", "kind": "parallel", "label": {"zh": "分头"}},
                {"name": "x", "kind": "exclusive", "label": {"zh": "判断"}},
                {"name": "w", "kind": "wait", "wait": {"event": "paid"}},
                {"name": "merge", "kind": "join"},
                {"name": "end", "kind": "end", "label": {"zh": "完成"}}
            ],
            "transitions": [
                {"from": "split", "to": "x"}, {"from": "split", "to": "w"},
                {"from": "x", "to": "merge", "default": true},
                {"from": "w", "to": "merge"}, {"from": "merge", "to": "end"}
            ]
        })));
        assert_well_formed(&svg);
        assert!(svg.contains("<circle cx"), "end circle");
        assert!(svg.contains(r#"stroke-dasharray="5 3""#), "dashed wait box");
        assert!(svg.contains(r##"fill="#455a64""##), "bars");
        assert!(svg.contains(r##"fill="#fff3e0""##), "diamond");
        assert!(svg.contains("等待 · 事件 paid"));
        assert!(svg.contains(">否则<"), "default edge label");
    }

    #[test]
    fn a_process_is_marked_where_it_is_and_where_it_went() {
        let s = clinic();
        let plain = flowchart_svg(&s);
        let marks = Marks {
            current: vec!["treat".into()],
            visited: vec!["checkin".into(), "treat".into(), "nowhere".into()],
        };
        let marked = flowchart_svg_marked(&s, &marks);
        assert_well_formed(&marked);
        assert_eq!(marked.matches(r#"class="here""#).count(), 1, "{marked}");
        assert!(
            marked.contains(r#"class="here" data-step="treat""#),
            "{marked}"
        );
        assert!(
            marked.contains(r#"class="visited" data-step="checkin""#),
            "{marked}"
        );
        assert!(
            !marked.contains(r#"class="visited" data-step="treat""#),
            "current wins"
        );
        // The marks are added to the same drawing: without them it is the service's.
        assert!(!plain.contains("class=\"here\"") && !plain.contains("class=\"visited\""));
        assert_eq!(flowchart_svg_marked(&s, &Marks::default()), plain);
    }

    #[test]
    fn output_is_deterministic() {
        let s = clinic_with_loop();
        assert_eq!(flowchart_svg(&s), flowchart_svg(&s.clone()));
    }

    #[test]
    fn broken_and_empty_services_still_draw() {
        let mut doc = clinic_json();
        doc["transitions"][0]["to"] = json!("nowhere");
        assert_well_formed(&flowchart_svg(&service(doc)));
        let empty = service(json!({"label": {"zh": "空"}, "steps": []}));
        let svg = flowchart_svg(&empty);
        assert_well_formed(&svg);
        assert!(svg.contains("<title>空</title>"));
        assert!(layers(&empty).is_empty());
    }

    #[test]
    fn text_width_counts_cjk_wider_than_ascii() {
        assert_eq!(text_width("到诊", 10.0), 20.0);
        assert_eq!(text_width("ab", 10.0), 12.0);
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(num(1.25), "1.3");
        assert_eq!(num(-0.01), "0");
        assert_eq!(num(12.0), "12");
    }

    #[test]
    fn an_edge_label_written_for_people_wins_over_its_condition() {
        let t: Transition = serde_json::from_value(json!({"from": "route", "to": "consult",
            "condition": "record.first_visit == true", "label": {"zh": "初诊"}}))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(edge_label(&t).as_deref(), Some("初诊"));
    }
}
