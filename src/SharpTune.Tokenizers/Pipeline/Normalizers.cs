using System.Globalization;
using System.Text.Json.Nodes;
using System.Text;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>Rewrites text before pre-tokenization, keeping the alignment with the original (Hugging Face "normalizer").</summary>
public interface INormalizer
{
    void Normalize(NormalizedString text);

    /// <summary>This normalizer as a tokenizer.json "normalizer" object.</summary>
    JsonObject ToJson();
}

/// <summary>Unicode classification shared by the pipeline, following Hugging Face's (Rust) definitions.</summary>
internal static class UnicodeRules
{
    public static bool IsWhitespace(Rune r) => Rune.IsWhiteSpace(r);

    /// <summary>Rust's char::is_control in tokenizers' BERT sense: "other" categories except \t \n \r.</summary>
    public static bool IsControl(Rune r)
    {
        if (r.Value is '\t' or '\n' or '\r')
            return false;
        return Rune.GetUnicodeCategory(r) is UnicodeCategory.Control or UnicodeCategory.Format
            or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned;
    }

    public static bool IsPunctuation(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.ConnectorPunctuation
        or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation
        or UnicodeCategory.InitialQuotePunctuation or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    /// <summary>BERT punctuation: ASCII punctuation (which includes symbols such as $ + &lt; = &gt; ^ ` | ~) or Unicode P*.</summary>
    public static bool IsBertPunctuation(Rune r) =>
        r.Value < 128 ? r.Value is > 32 and < 127 && !char.IsAsciiLetterOrDigit((char)r.Value) : IsPunctuation(r);

    public static bool IsChineseChar(int c) => c is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF
        or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F or >= 0x2B740 and <= 0x2B81F
        or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;

    public static bool IsMark(Rune r) => Rune.GetUnicodeCategory(r) is UnicodeCategory.NonSpacingMark
        or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark;

    /// <summary>Regex \w as in Rust's regex crate (Alphabetic, marks, decimal digits, connector punctuation, joiners).</summary>
    public static bool IsWordChar(Rune r)
    {
        var category = Rune.GetUnicodeCategory(r);
        return category is UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                   or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter or UnicodeCategory.NonSpacingMark
                   or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark or UnicodeCategory.DecimalDigitNumber
                   or UnicodeCategory.LetterNumber or UnicodeCategory.ConnectorPunctuation
               || r.Value is 0x200C or 0x200D || r.Value is >= 0x24B6 and <= 0x24E9;
    }

    /// <summary>Full lowercase of one code point (Rust char::to_lowercase: only U+0130 expands).</summary>
    public static void AppendLower(Rune r, int start, int end, NormalizedString.Builder builder)
    {
        if (r.Value == 0x130)
        {
            builder.Append("i\u0307", start, end);
            return;
        }
        builder.Append(Rune.ToLowerInvariant(r), start, end);
    }
}

public sealed class SequenceNormalizer(IReadOnlyList<INormalizer> normalizers) : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("Sequence", ("normalizers", Definitions.Array(Normalizers.Select(n => n.ToJson()))));

    public IReadOnlyList<INormalizer> Normalizers { get; } = normalizers;

    public void Normalize(NormalizedString text)
    {
        foreach (var normalizer in Normalizers)
            normalizer.Normalize(text);
    }
}

/// <summary>Unicode normalization forms (NFC, NFD, NFKC, NFKD).</summary>
public sealed class UnicodeNormalizer(NormalizationForm form) : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed(Form switch { NormalizationForm.FormC => "NFC", NormalizationForm.FormD => "NFD", NormalizationForm.FormKC => "NFKC", _ => "NFKD" });

    public NormalizationForm Form { get; } = form;

    public void Normalize(NormalizedString text)
    {
        // ASCII text is already in every normalization form (and string.IsNormalized costs a call into ICU).
        if (System.Text.Ascii.IsValid(text.Span) || text.Text.IsNormalized(Form))
            return;
        // Normalize each starter with its following marks: composition and reordering stay inside such a cluster,
        // and every output char is aligned with the cluster it came from.
        var source = text.Text;
        var builder = new NormalizedString.Builder(source.Length + 8);
        for (var i = 0; i < source.Length;)
        {
            var end = i + Rune.GetRuneAt(source, i).Utf16SequenceLength;
            while (end < source.Length && UnicodeRules.IsMark(Rune.GetRuneAt(source, end)))
                end += Rune.GetRuneAt(source, end).Utf16SequenceLength;
            var cluster = source.AsSpan(i, end - i);
            if (cluster.Length == 1 && cluster[0] < 0x80)
                builder.AppendRange(text, i, end);
            else
            {
                var normalized = cluster.ToString().Normalize(Form);
                if (normalized.Length == cluster.Length && normalized.AsSpan().SequenceEqual(cluster))
                    builder.AppendRange(text, i, end);
                else if (Form is NormalizationForm.FormD or NormalizationForm.FormKD)
                    AppendDecomposed(text, i, end, builder);
                else
                    builder.Append(normalized, text.Starts[i], text.Ends[end - 1]);
            }
            i = end;
        }
        text.Assign(builder);
    }

    // Decomposition works code point by code point, so each output char keeps the range of the char it came from.
    private void AppendDecomposed(NormalizedString text, int start, int end, NormalizedString.Builder builder)
    {
        for (var i = start; i < end;)
        {
            var rune = Rune.GetRuneAt(text.Text, i);
            var n = rune.Utf16SequenceLength;
            builder.Append(rune.ToString().Normalize(Form), text.Starts[i], text.Ends[i + n - 1]);
            i += n;
        }
    }
}

public sealed class LowercaseNormalizer : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("Lowercase");

    public void Normalize(NormalizedString text)
    {
        var span = text.Span;
        if (!span.ContainsAnyInRange('A', 'Z') && System.Text.Ascii.IsValid(span))
            return;
        // U+0130 lowercases to two chars, and invalid UTF-16 becomes U+FFFD: rebuild. Otherwise every code point keeps its
        // UTF-16 length (.NET's invariant casing is the same simple mapping per rune), so the alignment stays as it is.
        if (text.AnyRune(static r => r.Value == 0x130, '\0', '\u012F'))
            text.MapRunes(UnicodeRules.AppendLower);
        else
            text.ReplaceSameLength(text.Text.ToLowerInvariant());
    }
}

/// <summary>Removes non-spacing marks (use after NFD to strip accents).</summary>
public sealed class StripAccentsNormalizer : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("StripAccents");

    public void Normalize(NormalizedString text)
    {
        if (!text.AnyRune(r => Rune.GetUnicodeCategory(r) == UnicodeCategory.NonSpacingMark, '\0', '\u007F'))
            return;
        text.MapRunes((rune, start, end, builder) =>
        {
            if (Rune.GetUnicodeCategory(rune) != UnicodeCategory.NonSpacingMark)
                builder.Append(rune, start, end);
        });
    }
}

public sealed class StripNormalizer(bool left, bool right) : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("Strip", ("strip_left", Left), ("strip_right", Right));

    public bool Left { get; } = left;
    public bool Right { get; } = right;

    public void Normalize(NormalizedString text)
    {
        var s = text.Text;
        var start = 0;
        var end = s.Length;
        if (Left)
            while (start < end && char.IsWhiteSpace(s[start]))
                start++;
        if (Right)
            while (end > start && char.IsWhiteSpace(s[end - 1]))
                end--;
        if (start == 0 && end == s.Length)
            return;
        var builder = new NormalizedString.Builder(end - start);
        builder.AppendRange(text, start, end);
        text.Assign(builder);
    }
}

public sealed class PrependNormalizer(string prefix) : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("Prepend", ("prepend", Prefix));

    public string Prefix { get; } = prefix;

    public void Normalize(NormalizedString text) => text.Prepend(Prefix);
}

/// <summary>Replaces every match of a literal string or a regex by <see cref="Content"/>.</summary>
public sealed class ReplaceNormalizer : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("Replace", ("pattern", Pattern.ToJson()), ("content", Content));

    public ReplaceNormalizer(TokenizerPattern pattern, string content)
    {
        Pattern = pattern;
        Content = content;
    }

    public TokenizerPattern Pattern { get; }
    public string Content { get; }

    public void Normalize(NormalizedString text)
    {
        // A literal replaced by as many chars maps char for char: the alignment stays as it is.
        if (Pattern.Literal is { Length: > 0 } literal && Content.Length == literal.Length)
        {
            if (text.Span.IndexOf(literal, StringComparison.Ordinal) >= 0)
                text.ReplaceSameLength(text.Text.Replace(literal, Content, StringComparison.Ordinal));
            return;
        }
        var matches = Pattern.Matches(text.Text);
        if (matches.Count == 0)
            return;
        var builder = new NormalizedString.Builder(text.Length + 8);
        var at = 0;
        foreach (var (start, end) in matches)
        {
            var length = end - start;
            builder.AppendRange(text, at, start);
            if (Content.Length == length)
                for (var i = 0; i < length; i++)
                    builder.Append(Content[i], text.Starts[start + i], text.Ends[start + i]);
            else
                builder.Append(Content, text.Starts[start], text.Ends[start + length - 1]);
            at = start + length;
        }
        builder.AppendRange(text, at, text.Length);
        text.Assign(builder);
    }
}

/// <summary>BERT's normalizer: clean control chars, space out CJK ideographs, strip accents, lowercase.</summary>
public sealed class BertNormalizer(bool cleanText, bool handleChineseChars, bool? stripAccents, bool lowercase) : INormalizer
{
    public JsonObject ToJson() => Definitions.Typed("BertNormalizer", ("clean_text", CleanText), ("handle_chinese_chars", HandleChineseChars), ("strip_accents", StripAccents), ("lowercase", Lowercase));

    public bool CleanText { get; } = cleanText;
    public bool HandleChineseChars { get; } = handleChineseChars;
    public bool? StripAccents { get; } = stripAccents;
    public bool Lowercase { get; } = lowercase;

    public void Normalize(NormalizedString text)
    {
        if (CleanText && !IsClean(text))
            text.MapRunes((rune, start, end, builder) =>
            {
                if (rune.Value == 0 || rune.Value == 0xFFFD || UnicodeRules.IsControl(rune))
                    return;
                if (UnicodeRules.IsWhitespace(rune))
                    builder.Append(' ', start, end);
                else
                    builder.Append(rune, start, end);
            });
        if (HandleChineseChars && text.AnyRune(r => UnicodeRules.IsChineseChar(r.Value), '\0', '\u33FF'))
            text.MapRunes((rune, start, end, builder) =>
            {
                if (UnicodeRules.IsChineseChar(rune.Value))
                {
                    builder.Append(' ', start, end);
                    builder.Append(rune, start, end);
                    builder.Append(' ', start, end);
                }
                else
                    builder.Append(rune, start, end);
            });
        if (StripAccents ?? Lowercase)
        {
            _nfd.Normalize(text);
            _stripAccents.Normalize(text);
        }
        if (Lowercase)
            _lowercase.Normalize(text);
    }

    private static readonly UnicodeNormalizer _nfd = new(NormalizationForm.FormD);
    private static readonly StripAccentsNormalizer _stripAccents = new();
    private static readonly LowercaseNormalizer _lowercase = new();

    // Clean when cleaning would keep every char as it is: no control char, no char to drop, no whitespace but ' '.
    private static bool IsClean(NormalizedString text) => !text.AnyRune(r =>
        r.Value < 0x80 ? r.Value is < 0x20 or 0x7F : r.Value == 0xFFFD || UnicodeRules.IsControl(r) || UnicodeRules.IsWhitespace(r), ' ', '~');
}
