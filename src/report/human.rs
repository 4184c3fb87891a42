//! Floor L6 (`report`). The human summary printed at the end of a run, in English (the summary's
//! own lines, then the report's sections) or Japanese (`--lang ja`: every line
//! translated for municipal staff; zone ids, addresses, alert kinds and the
//! reasons quoted from inputs stay as they are).

use super::{MatrixEntry, PairTalkers, Report};
use crate::summary::{SeverityCounts, Summary};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Language of the human summary (`--lang`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

/// The whole human summary.
pub fn render(s: &Summary, r: &Report, lang: Lang) -> String {
    match lang {
        Lang::En => {
            let mut out = s.to_human();
            english_sections(&mut out, r);
            out
        }
        Lang::Ja => japanese(s, r),
    }
}

fn severity_parts(v: &SeverityCounts, names: [&str; 5]) -> Vec<String> {
    [v.critical, v.high, v.medium, v.low, v.info]
        .iter()
        .zip(names)
        .filter(|(n, _)| **n > 0)
        .map(|(n, k)| format!("{k} {n}"))
        .collect()
}

/// Severity names, most severe first (the order of `severity_parts`).
const JA_SEV: [&str; 5] = ["重大", "高", "中", "低", "情報"];

fn ja_severity(s: &str) -> &'static str {
    match s {
        "critical" => "重大",
        "high" => "高",
        "medium" => "中",
        "low" => "低",
        "info" => "情報",
        _ => "?",
    }
}

fn ja_verdict(v: &str) -> &'static str {
    match v {
        "allowed" => "許可",
        "violation" => "違反",
        "mixed" => "混在",
        "local" => "セグメント内",
        _ => "不明",
    }
}

// ---- English -------------------------------------------------------------

fn english_sections(s: &mut String, r: &Report) {
    if !r.zone_matrix.rules {
        let _ = writeln!(s, "  zone matrix    none (no --rules)");
    } else if r.zone_matrix.pairs.is_empty() {
        let _ = writeln!(s, "  zone matrix    no flows");
    } else {
        let _ = writeln!(
            s,
            "  zone matrix    initiator zone -> responder zone (\"{}\" = in no zone)",
            r.zone_matrix.no_zone
        );
        for e in &r.zone_matrix.pairs {
            let _ = writeln!(s, "                 {}", en_matrix(e));
        }
    }
    for (i, t) in r.top_talkers.iter().enumerate() {
        let title = if i == 0 { "top talkers" } else { "" };
        let _ = writeln!(s, "  {title:<14} {}", en_talkers(t));
    }
    en_anomalies(s, r);
}

fn en_matrix(e: &MatrixEntry) -> String {
    let mut v = e.verdict.to_string();
    if let Some(m) = e.max_severity {
        v.push_str(&format!(" ({m})"));
    }
    let mut line = format!(
        "{} -> {}: {} flows, {} packets, {} bytes; {v}",
        e.src_zone, e.dst_zone, e.flows, e.packets, e.bytes
    );
    if e.verdict == "mixed" {
        line.push_str(&format!(
            " [allowed {}, violation {}, unknown {}",
            e.allowed, e.violation, e.unknown
        ));
        if e.local > 0 {
            line.push_str(&format!(", segment-local {}", e.local));
        }
        line.push(']');
    }
    line
}

fn en_talkers(t: &PairTalkers) -> String {
    let top: Vec<String> = t
        .top
        .iter()
        .map(|x| format!("{} ({} flows, {} bytes)", x.address, x.flows, x.bytes))
        .collect();
    let mut line = format!("{} -> {}: {}", t.src_zone, t.dst_zone, top.join(", "));
    if !t.complete {
        line.push_str(&format!(
            "; incomplete: {} flows from initiators not tracked",
            t.untracked.flows
        ));
    }
    line
}

fn join_counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    m.iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn en_anomalies(s: &mut String, r: &Report) {
    if !r.has_anomalies() {
        let _ = writeln!(s, "  anomalies      none");
        return;
    }
    let a = &r.anomalies;
    let mut lines = Vec::new();
    for x in &a.stopped_early {
        lines.push(format!("{} stopped early: {}", x.input, x.reason));
    }
    if !a.decode_failures.is_empty() {
        lines.push(format!(
            "decode failures: {}",
            join_counts(&a.decode_failures)
        ));
    }
    if !a.drops.is_empty() {
        lines.push(format!("drops: {}", join_counts(&a.drops)));
    }
    for x in &a.skipped {
        lines.push(format!(
            "{} skipped {} records: {}",
            x.input, x.count, x.reason
        ));
    }
    if a.gaps.count > 0 {
        let listed: Vec<String> = a
            .gaps
            .listed
            .iter()
            .map(|g| format!("{} .. {} ({:.3} s)", g.from, g.to, g.secs))
            .collect();
        lines.push(format!(
            "{} gap{} over {} s without packets: {}{}",
            a.gaps.count,
            if a.gaps.count == 1 { "" } else { "s" },
            a.gaps.threshold_secs,
            listed.join(", "),
            if a.gaps.count > listed.len() as u64 {
                ", ..."
            } else {
                ""
            }
        ));
    }
    if a.time_backwards > 0 {
        lines.push(format!(
            "{} packets older than the packet before them",
            a.time_backwards
        ));
    }
    for (i, l) in lines.iter().enumerate() {
        let title = if i == 0 { "anomalies" } else { "" };
        let _ = writeln!(s, "  {title:<14} {l}");
    }
}

// ---- Japanese ------------------------------------------------------------

/// "名前 n、名前 n" leaving out zeros; "なし" when all are zero.
fn ja_counts<K: std::fmt::Display>(m: &BTreeMap<K, u64>) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if parts.is_empty() {
        "なし".to_string()
    } else {
        parts.join("、")
    }
}

/// A zone id with its Japanese name from the rules, if any: "lgwan.term（LGWAN接続系・端末）".
fn ja_zone(r: &Report, id: &str) -> String {
    match r.zone_names.get(id).and_then(|n| n.ja.as_deref()) {
        Some(name) => format!("{id}（{name}）"),
        None => id.to_string(),
    }
}

fn japanese(s: &Summary, r: &Report) -> String {
    let mut o = String::new();
    let rate = if s.elapsed_secs > 0.0 {
        s.packets as f64 / s.elapsed_secs
    } else {
        0.0
    };
    let mode = if s.mode == "live" {
        "ライブ監視"
    } else {
        "リプレイ"
    };
    let _ = writeln!(
        o,
        "zonewatch {mode}：{} パケット、{} バイト取得（回線上 {} バイト）、処理時間 {:.3} 秒（毎秒 {:.0} パケット、ワーカー {}）",
        s.packets, s.bytes, s.wire_bytes, s.elapsed_secs, rate, s.workers
    );
    if let (Some(a), Some(b)) = (&s.first_packet, &s.last_packet) {
        let _ = writeln!(
            o,
            "  取得時刻：{a} .. {b}（{:.3} 秒、UTC）",
            s.duration_secs
        );
    }
    if s.clock_steps.count > 0 {
        let first: Vec<String> = s
            .clock_steps
            .listed
            .iter()
            .take(3)
            .map(|st| {
                format!(
                    "{} 番目のパケットで {:.3} 秒（{}）",
                    st.frame, st.back_secs, st.at
                )
            })
            .collect();
        let _ = writeln!(
            o,
            "  時刻の巻き戻り：{} 回。以降のパケットは巻き戻った分だけ後ろの時刻として処理しました：{}",
            s.clock_steps.count,
            first.join("、")
        );
    }
    match s.stopped_by {
        "signal" => {
            let _ = writeln!(o, "  停止理由：シグナル（Ctrl-C / SIGTERM）");
        }
        "limit" => {
            let _ = writeln!(o, "  停止理由：指定の上限（--count / --duration-secs）");
        }
        _ => {}
    }
    let _ = writeln!(o, "  リンク層：{}", ja_counts(&s.link));
    let _ = writeln!(o, "  ネットワーク層：{}", ja_counts(&s.network));
    let _ = writeln!(o, "  トランスポート層：{}", ja_counts(&s.transport));
    let _ = writeln!(
        o,
        "  フラグメント：先頭 {}、後続 {}",
        s.fragments.first, s.fragments.non_first
    );
    let _ = writeln!(
        o,
        "  VLAN：タグ付き {}、多重タグ {}",
        s.vlan_tagged, s.vlan_stacked
    );
    let _ = writeln!(o, "  トンネル：{}", ja_counts(&s.tunnels));
    if s.icmp_errors > 0 {
        let _ = writeln!(
            o,
            "  ICMP エラー：{}（うち {} 件は対応する通信あり）",
            s.icmp_errors, s.flows.icmp_errors_matched
        );
    }
    let _ = writeln!(
        o,
        "  解析できなかったフレーム：{}",
        ja_counts(&s.decode_failures)
    );
    let _ = writeln!(
        o,
        "  通信（フロー）：作成 {}、追い出し {}、同時最大 {}",
        s.flows.created, s.flows.evicted, s.flows.peak_active
    );
    let _ = writeln!(o, "  通信の終了理由：{}", ja_counts(&s.flows.ended));
    let _ = writeln!(o, "  取りこぼし（ドロップ）：{}", ja_counts(&s.drops));
    if let Some(p) = &s.policy {
        let _ = writeln!(
            o,
            "  ポリシー判定：許可 {}、違反 {}、不明 {}、セグメント内 {}",
            p.flows.allowed, p.flows.violation, p.flows.unknown, p.flows.local
        );
        let v = severity_parts(&p.violations_by_severity, JA_SEV);
        let _ = writeln!(
            o,
            "  違反の重大度：{}",
            if v.is_empty() {
                "なし".to_string()
            } else {
                v.join("、")
            }
        );
        if p.reloads + p.reload_failures > 0 {
            let _ = writeln!(
                o,
                "  ルールの再読み込み：成功 {}、失敗 {}（失敗時は前のルールのまま）",
                p.reloads, p.reload_failures
            );
        }
    }
    if let Some(a) = &s.alerts {
        let sev = severity_parts(&a.by_severity, JA_SEV);
        let _ = writeln!(
            o,
            "  アラート：{} 件（重大度別：{}）",
            a.written,
            if sev.is_empty() {
                "なし".to_string()
            } else {
                sev.join("、")
            }
        );
        if !a.by_kind.is_empty() {
            let _ = writeln!(o, "    種類別：{}", ja_counts(&a.by_kind));
        }
        if a.violating_flows > 0 {
            let _ = writeln!(
                o,
                "    分離違反の通信 {} 件を、同じ通信ごとに {} 件、同じ送信元ごとに {} 件まとめました（時間枠 {} 秒）",
                a.violating_flows, a.folded_by_flow, a.folded_by_source, a.fold_window_secs
            );
        }
        if a.observations_forced > 0 {
            let _ = writeln!(
                o,
                "    観測 {} 件を早めに処理しました（大量の通信で待ち行列が満杯）",
                a.observations_forced
            );
        }
        if a.closed_early + a.late + a.observations_late > 0 {
            let _ = writeln!(
                o,
                "    早期に確定（まとめ中のアラートが多すぎる）{}、遅延（入力の時刻順の乱れ）{}",
                a.closed_early,
                a.late + a.observations_late
            );
        }
        if let Some(e) = &a.evidence {
            let _ = writeln!(
                o,
                "    証拠 pcap：{} ファイル、{} パケット、{} バイト",
                e.files, e.packets, e.bytes
            );
            // Japanese names of the cut reasons, in CUT_REASONS order.
            const JA_CUTS: [&str; 9] = [
                "上限超過でファイルなしのアラート",
                "ファイルを作れずファイルなしのアラート",
                "1 ファイルの上限を超えたフレーム",
                "全体の上限を超えたフレーム",
                "リンク種別の異なるフレーム",
                "上限を超えた通信",
                "バッファ満杯で捨てたフレーム",
                "書き込みエラー",
                "解析の遅れで複写できなかったフレーム",
            ];
            let cuts: Vec<(&str, u64)> = JA_CUTS
                .iter()
                .zip(e.cuts())
                .map(|(ja, (_, n))| (*ja, n))
                .collect();
            let cut: Vec<String> = cuts
                .iter()
                .filter(|(_, n)| *n > 0)
                .map(|(what, n)| format!("{what} {n}"))
                .collect();
            if !cut.is_empty() {
                let _ = writeln!(o, "      省いたもの：{}", cut.join("、"));
            }
        }
    }
    for src in &s.sources {
        let _ = writeln!(
            o,
            "  入力：{}（{}、{}）：{} フレーム、{} バイト",
            src.name,
            src.format,
            src.link_types.join("/"),
            src.frames,
            src.bytes
        );
        if let Some(l) = &src.live {
            let _ = writeln!(
                o,
                "    libpcap：受信 {}、取りこぼし {}、インターフェースでの取りこぼし {}",
                l.received, l.dropped, l.if_dropped
            );
        }
    }
    // Zone matrix.
    if !r.zone_matrix.rules {
        let _ = writeln!(o, "  ゾーン間の通信：なし（--rules の指定なし）");
    } else if r.zone_matrix.pairs.is_empty() {
        let _ = writeln!(o, "  ゾーン間の通信：通信なし");
    } else {
        let _ = writeln!(
            o,
            "  ゾーン間の通信（通信を始めた側のゾーン → 応答した側のゾーン、「{}」はどのゾーンにも属さないアドレス）：",
            r.zone_matrix.no_zone
        );
        for e in &r.zone_matrix.pairs {
            let mut v = ja_verdict(e.verdict).to_string();
            if let Some(m) = e.max_severity {
                v.push_str(&format!("（最大重大度 {}）", ja_severity(m)));
            }
            let _ = write!(
                o,
                "    {} → {}：通信 {} 件、{} パケット、{} バイト、判定 {v}",
                ja_zone(r, &e.src_zone),
                ja_zone(r, &e.dst_zone),
                e.flows,
                e.packets,
                e.bytes
            );
            if e.verdict == "mixed" {
                let _ = write!(
                    o,
                    "［許可 {}、違反 {}、不明 {}",
                    e.allowed, e.violation, e.unknown
                );
                if e.local > 0 {
                    let _ = write!(o, "、セグメント内 {}", e.local);
                }
                o.push('］');
            }
            let _ = writeln!(o);
        }
    }
    // Top talkers.
    if !r.top_talkers.is_empty() {
        let _ = writeln!(o, "  送信元の上位（ゾーンの組ごと、バイト数の多い順）：");
        for t in &r.top_talkers {
            let top: Vec<String> = t
                .top
                .iter()
                .map(|x| format!("{}（通信 {} 件、{} バイト）", x.address, x.flows, x.bytes))
                .collect();
            let _ = write!(
                o,
                "    {} → {}：{}",
                ja_zone(r, &t.src_zone),
                ja_zone(r, &t.dst_zone),
                top.join("、")
            );
            if !t.complete {
                let _ = write!(
                    o,
                    "（不完全：記録しきれなかった送信元の通信 {} 件）",
                    t.untracked.flows
                );
            }
            let _ = writeln!(o);
        }
    }
    // Anomalies.
    if !r.has_anomalies() {
        let _ = writeln!(o, "  キャプチャの異常：なし");
    } else {
        let _ = writeln!(o, "  キャプチャの異常：");
        let a = &r.anomalies;
        for x in &a.stopped_early {
            let _ = writeln!(o, "    {} は途中で終わっています：{}", x.input, x.reason);
        }
        if !a.decode_failures.is_empty() {
            let _ = writeln!(
                o,
                "    解析できなかったフレーム：{}",
                ja_counts(&a.decode_failures)
            );
        }
        if !a.drops.is_empty() {
            let _ = writeln!(o, "    取りこぼし：{}", ja_counts(&a.drops));
        }
        for x in &a.skipped {
            let _ = writeln!(
                o,
                "    {} で {} 件のレコードを読み飛ばしました：{}",
                x.input, x.count, x.reason
            );
        }
        if a.gaps.count > 0 {
            let _ = writeln!(
                o,
                "    {} 秒を超えてパケットのない時間帯：{} か所",
                a.gaps.threshold_secs, a.gaps.count
            );
            for g in &a.gaps.listed {
                let _ = writeln!(o, "      {} .. {}（{:.3} 秒）", g.from, g.to, g.secs);
            }
        }
        if a.time_backwards > 0 {
            let _ = writeln!(
                o,
                "    直前のパケットより時刻が前のパケット：{} 個",
                a.time_backwards
            );
        }
    }
    o
}
