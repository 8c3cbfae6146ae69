//! Identifiers derived from Chinese labels, and search keys in pinyin.
//!
//! Analysts name things in Chinese; tables, columns and API keys need ASCII identifiers.
//! `患者` becomes `huanzhe`, `姓名` becomes `xingming`. Clashes are resolved predictably by
//! declaration order (`_2`, `_3`, …) so the same definition always yields the same names.
//! This module never touches storage; it only computes strings.

use pinyin::ToPinyin;

/// Words whose characters the pinyin tables read wrongly on their own (长 alone is `zhang`,
/// 时长 is `shichang`). The original system had no such handling and named fields wrongly;
/// this table covers the heteronyms common in business definitions.
const PHRASES: &[(&str, &[&str])] = &[
    ("时长", &["shi", "chang"]),
    ("长度", &["chang", "du"]),
    ("长期", &["chang", "qi"]),
    ("延长", &["yan", "chang"]),
    ("银行", &["yin", "hang"]),
    ("行业", &["hang", "ye"]),
    ("重复", &["chong", "fu"]),
    ("重新", &["chong", "xin"]),
    ("调Q", &["tiao", "q"]),
    ("调整", &["tiao", "zheng"]),
    ("还款", &["huan", "kuan"]),
    ("退还", &["tui", "huan"]),
    ("角色", &["jue", "se"]),
    ("着装", &["zhuo", "zhuang"]),
    ("校验", &["jiao", "yan"]),
    ("便宜", &["pian", "yi"]),
    ("会计", &["kuai", "ji"]),
    ("处方", &["chu", "fang"]),
];

/// The reading of each character of `text`: its toneless pinyin (ü written `v`, as pinyin
/// keyboards do) or None for characters that are not Chinese.
fn readings(text: &str) -> Vec<(char, Option<String>)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out: Vec<(char, Option<String>)> = chars
        .iter()
        .zip(text.to_pinyin())
        .map(|(c, p)| (*c, p.map(|p| p.plain().replace('ü', "v"))))
        .collect();
    for (phrase, spelled) in PHRASES {
        let pc: Vec<char> = phrase.chars().collect();
        let mut i = 0;
        while i + pc.len() <= chars.len() {
            if chars[i..i + pc.len()] == pc[..] {
                for (k, reading) in spelled.iter().enumerate() {
                    if out[i + k].1.is_some() {
                        out[i + k].1 = Some((*reading).to_owned());
                    }
                }
                i += pc.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// The longest identifier erpos accepts: short enough for PostgreSQL's 63-byte limit once
/// the `rec_` table prefix and `__archived_vN` suffixes are added.
pub const MAX_IDENTIFIER_LEN: usize = 40;

/// Whether `s` is a valid erpos identifier: lowercase ASCII, digits and single underscores,
/// starting with a letter. Double underscores are reserved for archived columns.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    first.is_ascii_lowercase()
        && s.len() <= MAX_IDENTIFIER_LEN
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !s.contains("__")
        && !s.ends_with('_')
}

/// Derives an identifier from a label: Chinese characters become their pinyin without tone
/// or separators, ASCII letters and digits are kept (lowercased), and anything else becomes
/// a single underscore. The result always satisfies [`is_identifier`] (prefixed with `f_`
/// when it would start with a digit, `item` when nothing usable is left).
pub fn derive_identifier(label: &str) -> String {
    let mut out = String::new();
    for (ch, py) in readings(label) {
        match py {
            Some(p) => out.push_str(&p),
            None if ch.is_ascii_alphanumeric() => out.push(ch.to_ascii_lowercase()),
            None => {
                if !out.ends_with('_') && !out.is_empty() {
                    out.push('_');
                }
            }
        }
    }
    let mut out = out.trim_end_matches('_').to_owned();
    if out.is_empty() {
        out.push_str("item");
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "f_");
    }
    if out.len() > MAX_IDENTIFIER_LEN {
        out.truncate(MAX_IDENTIFIER_LEN);
        out = out.trim_end_matches('_').to_owned();
    }
    out
}

/// Makes `base` unique against `taken` by appending `_2`, `_3`, … in order, so that two
/// fields both labelled 备注 become `beizhu` and `beizhu_2` every time.
pub fn disambiguate(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_owned();
    }
    (2..)
        .map(|n| {
            let suffix = format!("_{n}");
            let keep = MAX_IDENTIFIER_LEN
                .saturating_sub(suffix.len())
                .min(base.len());
            // Cutting may leave a trailing underscore; `x_` + `_2` would be `x__2`, and double
            // underscores are reserved for archived columns.
            let cut = base.get(..keep).unwrap_or(base).trim_end_matches('_');
            format!("{cut}{suffix}")
        })
        .find(|candidate| !taken(candidate))
        .unwrap_or_else(|| base.to_owned())
}

/// Surnames read otherwise than the character's common reading (曾 is `ceng` in 曾经 but
/// `zeng` as a surname, 单 `dan` in 单价 but `shan`, 解 `jie` / `xie`, 仇 `chou` / `qiu`,
/// 区 `qu` / `ou`, 查 `cha` / `zha`, …): a receptionist looks 曾丽 up as `zl`. Compound
/// surnames first, so 尉迟 is not read as 尉 alone.
const SURNAMES: &[(&str, &[&str])] = &[
    ("尉迟", &["yu", "chi"]),
    ("万俟", &["mo", "qi"]),
    ("长孙", &["zhang", "sun"]),
    ("澹台", &["tan", "tai"]),
    ("曾", &["zeng"]),
    ("单", &["shan"]),
    ("解", &["xie"]),
    ("仇", &["qiu"]),
    ("区", &["ou"]),
    ("查", &["zha"]),
    ("盖", &["ge"]),
    ("朴", &["piao"]),
    ("乐", &["yue"]),
    ("覃", &["qin"]),
    ("翟", &["zhai"]),
    ("缪", &["miao"]),
    ("召", &["shao"]),
    ("秘", &["bi"]),
    ("繁", &["po"]),
    ("员", &["yun"]),
    ("种", &["chong"]),
    ("黑", &["he"]),
    ("宓", &["fu"]),
];

/// The version of [`search_keys`]: raised whenever what it gives for a text changes, so the
/// kernel rebuilds the search documents stored with an older one (2: surname readings;
/// 3: pinyin sort keys are stored too, see [`sort_key`]; 4: search grams are stored too,
/// see [`search_grams`]).
pub const SEARCH_KEYS_VERSION: u32 = 4;

/// The longest gram stored: a search word longer than this is looked up by its first
/// `MAX_GRAM_CHARS` characters and then checked against the whole document.
pub const MAX_GRAM_CHARS: usize = 16;

/// The most grams one record stores; a record with more (a long searchable text) stores
/// [`OVERFLOW_GRAM`] instead, and every search checks it against its document.
pub const MAX_GRAMS: usize = 512;

/// The gram marking a record whose document has more grams than [`MAX_GRAMS`]: it is a
/// candidate for every search. A single space: no gram and no search word holds one, so
/// it is never in a word's range.
pub const OVERFLOW_GRAM: &str = " ";

/// The grams of a search document that make "the document contains the word" an index
/// lookup: every suffix of every word of the document (at most [`MAX_GRAM_CHARS`] long), so
/// a search word is in the document exactly when it is a prefix of one of its grams —
/// `zl` of 曾丽's initials, `8000` of a phone's last digits, `丽` of the name itself. A
/// prefix is a range of an ordered index (see [`gram_range`]), unlike the substring scan
/// `LIKE '%zl%'`, which must read every record.
pub fn search_grams(document: &str) -> Vec<String> {
    let mut grams = std::collections::BTreeSet::new();
    for word in document.split_whitespace() {
        let chars: Vec<char> = word.chars().collect();
        for start in 0..chars.len() {
            let end = (start + MAX_GRAM_CHARS).min(chars.len());
            grams.insert(chars[start..end].iter().collect::<String>());
            if grams.len() > MAX_GRAMS {
                return vec![OVERFLOW_GRAM.to_owned()];
            }
        }
    }
    grams.into_iter().collect()
}

/// The range of grams a search word is a prefix of: from its first [`MAX_GRAM_CHARS`]
/// characters (inclusive) to the same followed by the highest character (exclusive), which
/// orders after every continuation when compared byte by byte (UTF-8), as both databases
/// compare this column.
pub fn gram_range(word: &str) -> (String, String) {
    let from: String = word.chars().take(MAX_GRAM_CHARS).collect();
    let to = format!("{from}{}", char::MAX);
    (from, to)
}

/// The full pinyin and the initials of `readings`, each non-Chinese run kept as it is.
fn spell(readings: &[(char, Option<String>)]) -> (String, String) {
    let mut full = String::new();
    let mut initials = String::new();
    for (ch, py) in readings {
        match py {
            Some(p) => {
                full.push_str(p);
                initials.push_str(p.get(..1).unwrap_or_default());
            }
            None if ch.is_alphanumeric() => {
                full.push(*ch);
                initials.push(*ch);
            }
            None => {
                full.push(' ');
                initials.push(' ');
            }
        }
    }
    (full, initials)
}

/// The search keys of a piece of text: the text itself (lowercased), its pinyin spelled out
/// without separators, and its pinyin initials, space separated. `张三` yields
/// `张三 zhangsan zs`, so staff find a patient by any of the three. A text that starts
/// with a surname read otherwise ([`SURNAMES`]) also carries that reading: `曾丽` yields
/// `曾丽 cengli cl zengli zl` (the text may not be a name: `曾经` keeps `cengjing`).
/// Identifiers never take the surname reading: 单价 is `danjia`.
pub fn search_keys(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut read = readings(&lower);
    if !read.iter().any(|(_, p)| p.is_some()) {
        return lower;
    }
    let (full, initials) = spell(&read);
    let mut out = format!("{lower} {full} {initials}");
    if read_surname(&lower, &mut read) {
        let (full, initials) = spell(&read);
        out.push_str(&format!(" {full} {initials}"));
    }
    out
}

/// Gives the readings of a text that starts with a surname read otherwise ([`SURNAMES`])
/// that surname's reading; true when that changed them.
fn read_surname(lower: &str, read: &mut [(char, Option<String>)]) -> bool {
    let start = lower.trim_start();
    let skipped = lower.chars().count() - start.chars().count();
    let Some((surname, spelled)) = SURNAMES.iter().find(|(s, _)| start.starts_with(s)) else {
        return false;
    };
    let mut changed = false;
    for (k, reading) in spelled.iter().enumerate() {
        if let Some((_, Some(p))) = read.get_mut(skipped + k)
            && p != reading
        {
            *p = (*reading).to_owned();
            changed = true;
        }
    }
    changed && surname.chars().count() == spelled.len()
}

/// The key a text sorts by in pinyin order: its syllables, lowercase, each followed by a
/// space (so 李四 `li si` comes before 梁 `liang`: a syllable's end sorts before any
/// letter), a leading surname in its surname reading (曾丽 is `zeng li`, among the z's,
/// not `ceng li`), other characters as they are; then, after U+0001, the text
/// itself, so homophones keep one order. Compared bytewise (SQLite's BINARY, PostgreSQL's
/// "C"), which is the same on both databases.
pub fn sort_key(text: &str) -> String {
    let lower = text.to_lowercase();
    let mut read = readings(&lower);
    read_surname(&lower, &mut read);
    let mut out = String::new();
    for (ch, py) in &read {
        match py {
            Some(p) => {
                out.push_str(p);
                out.push(' ');
            }
            None if ch.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            None => out.push(*ch),
        }
    }
    out.push('\u{1}');
    out.push_str(&lower);
    out
}

#[cfg(test)]
mod gram_tests {
    use super::*;

    #[test]
    fn a_word_is_in_a_document_exactly_when_it_prefixes_one_of_its_grams() {
        let doc = search_keys("曾丽");
        let grams = search_grams(&doc);
        for word in ["zl", "l", "zengli", "li", "曾丽", "丽", "engl"] {
            let (from, to) = gram_range(word);
            assert!(doc.contains(word));
            assert!(
                grams.iter().any(|g| *g >= from && *g < to),
                "{word} in {grams:?}"
            );
        }
        for word in ["zz", "ilz", "丽曾"] {
            let (from, to) = gram_range(word);
            assert!(
                !grams.iter().any(|g| *g >= from && *g < to),
                "{word} in {grams:?}"
            );
        }
        let long = "x".repeat(40) + "tail";
        let (from, to) = gram_range(&long);
        assert!(search_grams(&long).iter().any(|g| *g >= from && *g < to));
        let many: String = (0..600).map(|i| format!("w{i} ")).collect();
        assert_eq!(search_grams(&many), [OVERFLOW_GRAM]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_in_pinyin_order_with_surname_readings() {
        let mut names = [
            "张三",
            "曾丽",
            "单雪",
            "李四",
            "梁晓",
            "阿花",
            "赵六",
            "解晓东",
            "Amy",
            "王五",
        ];
        names.sort_by_key(|n| sort_key(n));
        // 曾 zeng, 单 shan and 解 xie as surnames; li si before liang.
        assert_eq!(
            names,
            [
                "阿花",
                "Amy",
                "李四",
                "梁晓",
                "单雪",
                "王五",
                "解晓东",
                "曾丽",
                "张三",
                "赵六"
            ]
        );
        assert_eq!(sort_key("曾丽"), "zeng li \u{1}曾丽");
    }

    #[test]
    fn chinese_labels_become_pinyin_identifiers() {
        assert_eq!(derive_identifier("患者"), "huanzhe");
        assert_eq!(derive_identifier("姓名"), "xingming");
        assert_eq!(derive_identifier("预约记录"), "yuyuejilu");
        assert_eq!(derive_identifier("时长(分钟)"), "shichang_fenzhong");
        assert_eq!(derive_identifier("银行账号"), "yinhangzhanghao");
        assert_eq!(derive_identifier("调Q激光"), "tiaoqjiguang");
        assert_eq!(derive_identifier("折扣率"), "zhekoulv");
        assert_eq!(derive_identifier("3D 扫描"), "f_3d_saomiao");
        assert_eq!(derive_identifier("!!!"), "item");
        assert!(is_identifier(&derive_identifier("超声炮 Ultraformer III")));
    }

    #[test]
    fn clashes_are_resolved_in_order() {
        let taken = ["beizhu", "beizhu_2"];
        assert_eq!(disambiguate("beizhu", |s| taken.contains(&s)), "beizhu_3");
        assert_eq!(disambiguate("xingming", |s| taken.contains(&s)), "xingming");
        let long = format!("{}_bc", "a".repeat(37));
        let second = disambiguate(&long, |s| s == long);
        assert!(is_identifier(&second), "{second}");
    }

    #[test]
    fn surnames_read_as_surnames_are_found_by_their_initials() {
        for (name, initials) in [
            ("曾丽", "zl"),
            ("单雪", "sx"),
            ("解晓东", "xxd"),
            ("仇敏", "qm"),
            ("区家明", "ojm"),
            ("查小欣", "zxx"),
            ("盖伟", "gw"),
            ("朴志勇", "pzy"),
            ("尉迟恭", "ycg"),
        ] {
            let keys = search_keys(name);
            assert!(
                keys.split(' ').any(|k| k == initials),
                "{name}: {keys} has no {initials}"
            );
        }
        assert!(search_keys("曾丽").contains("zengli"));
        // Still found as the characters read elsewhere (the text may not be a name).
        assert!(search_keys("曾经").contains("cengjing"));
        // Identifiers keep the common reading: 单价 is the unit price.
        assert_eq!(derive_identifier("单价"), "danjia");
        assert_eq!(search_keys("张三"), "张三 zhangsan zs");
    }

    #[test]
    fn search_keys_carry_full_pinyin_and_initials() {
        let keys = search_keys("张三");
        assert!(keys.contains("张三") && keys.contains("zhangsan") && keys.contains("zs"));
        assert_eq!(search_keys("Botox"), "botox");
    }

    #[test]
    fn identifiers_are_checked() {
        assert!(is_identifier("huanzhe"));
        assert!(is_identifier("record_no2"));
        assert!(!is_identifier("Huanzhe"));
        assert!(!is_identifier("2x"));
        assert!(!is_identifier("a__b"));
        assert!(!is_identifier("_a"));
        assert!(!is_identifier(""));
    }
}
