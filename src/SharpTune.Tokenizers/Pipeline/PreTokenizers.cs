using System.Buffers;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text;
using SharpTune.Tokenizers.Loading;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>Splits normalized text into words that the model tokenizes independently (Hugging Face "pre_tokenizer").</summary>
public interface IPreTokenizer
{
    /// <summary>Splits <paramref name="input"/> and appends the pieces to <paramref name="output"/>.</summary>
    void Split(NormalizedString input, List<NormalizedString> output);

    /// <summary>This pre-tokenizer as a tokenizer.json "pre_tokenizer" object.</summary>
    JsonObject ToJson();
}

/// <summary>
/// A pre-tokenizer that can give its words as ranges of the normalized text instead of one object per word: the encoding
/// hot path, where most words are only read as spans by the model.
/// </summary>
internal interface IRangePreTokenizer
{
    /// <summary>Appends the words' ranges in <paramref name="input"/>'s text (after any change the pre-tokenizer makes to
    /// it); false, with <paramref name="input"/> untouched, when this input needs <see cref="IPreTokenizer.Split"/>.</summary>
    bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output);

    /// <summary>The text the model sees for a word: the word itself, or its transformation written into <paramref name="buffer"/>
    /// (as long as the word, char for char, so the word's alignment still applies).</summary>
    ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer);
}

/// <summary>What happens to the delimiters found by a splitting pre-tokenizer (Hugging Face SplitDelimiterBehavior).</summary>
public enum SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous }

internal static class Splitting
{
    /// <summary>Applies <paramref name="behavior"/> to a partition of the text into matches and non-matches.</summary>
    public static void Apply(NormalizedString input, List<(int Start, int End, bool IsMatch)> pieces, SplitBehavior behavior,
        List<NormalizedString> output)
    {
        var merged = new List<(int Start, int End)>(pieces.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var p in pieces)
                    if (!p.IsMatch)
                        merged.Add((p.Start, p.End));
                break;
            case SplitBehavior.Isolated:
                foreach (var p in pieces)
                    merged.Add((p.Start, p.End));
                break;
            case SplitBehavior.Contiguous:
            {
                var previousMatch = false;
                foreach (var p in pieces)
                {
                    if (p.IsMatch && previousMatch && merged.Count > 0)
                        merged[^1] = (merged[^1].Start, p.End);
                    else
                        merged.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithPrevious:
            {
                var previousMatch = false;
                foreach (var p in pieces)
                {
                    if (p.IsMatch && !previousMatch && merged.Count > 0)
                        merged[^1] = (merged[^1].Start, p.End);
                    else
                        merged.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                var previousMatch = false;
                for (var i = pieces.Count - 1; i >= 0; i--)
                {
                    var p = pieces[i];
                    if (p.IsMatch && !previousMatch && merged.Count > 0)
                        merged[^1] = (p.Start, merged[^1].End);
                    else
                        merged.Add((p.Start, p.End));
                    previousMatch = p.IsMatch;
                }
                merged.Reverse();
                break;
            }
        }
        foreach (var (start, end) in merged)
            if (end > start)
                output.Add(input.Slice(start, end));
    }

    /// <summary>Partitions by a per-code-point predicate: every matching code point is its own match.</summary>
    public static List<(int, int, bool)> ByChar(string text, Func<Rune, bool> isDelimiter)
    {
        var pieces = new List<(int, int, bool)>();
        var start = 0;
        for (var i = 0; i < text.Length;)
        {
            var rune = Rune.GetRuneAt(text, i);
            var n = rune.Utf16SequenceLength;
            if (isDelimiter(rune))
            {
                if (i > start)
                    pieces.Add((start, i, false));
                pieces.Add((i, i + n, true));
                start = i + n;
            }
            i += n;
        }
        if (text.Length > start)
            pieces.Add((start, text.Length, false));
        return pieces;
    }

    public static List<(int, int, bool)> ByPattern(string text, TokenizerPattern pattern, bool invert)
    {
        var pieces = new List<(int, int, bool)>();
        var at = 0;
        foreach (var (start, end) in pattern.Matches(text))
        {
            if (start > at)
                pieces.Add((at, start, invert));
            pieces.Add((start, end, !invert));
            at = end;
        }
        if (text.Length > at)
            pieces.Add((at, text.Length, invert));
        return pieces;
    }

    /// <summary>Splits into runs of code points of the same class; class -1 is dropped (whitespace).</summary>
    public static void ByClassRuns(ReadOnlySpan<char> text, Func<Rune, int> classify, List<(int, int)> output)
    {
        var start = 0;
        var current = -1;
        for (var i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text[i..], out var rune, out var n);
            var cls = classify(rune);
            if (cls != current)
            {
                if (current >= 0 && i > start)
                    output.Add((start, i));
                start = i;
                current = cls;
            }
            i += n;
        }
        if (current >= 0 && text.Length > start)
            output.Add((start, text.Length));
    }

    /// <summary><see cref="IPreTokenizer.Split"/> through the ranges of a range pre-tokenizer.</summary>
    public static void SplitByRanges(IRangePreTokenizer preTokenizer, NormalizedString input, List<NormalizedString> output)
    {
        var ranges = new List<(int Start, int End)>();
        if (!preTokenizer.TrySplitRanges(input, ranges))
            throw new InvalidOperationException($"{preTokenizer.GetType().Name} splits every text into ranges");
        foreach (var (start, end) in ranges)
            output.Add(input.Slice(start, end));
    }
}

public sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> preTokenizers) : IPreTokenizer, IRangePreTokenizer
{
    // Isolating Splits, then byte-level without its own regex (Llama-3, Qwen2/3, DeepSeek-V3, GPT-4o): on ASCII text every
    // byte is its own char, so the words are ranges of the text and the byte-level step maps them char for char.
    private readonly SplitPreTokenizer[]? _splits = preTokenizers.Count >= 2 && preTokenizers[^1] is ByteLevelPreTokenizer { AddPrefixSpace: false, UseRegex: false }
        && preTokenizers.Take(preTokenizers.Count - 1).All(p => p is SplitPreTokenizer { Behavior: SplitBehavior.Isolated, Invert: false })
            ? preTokenizers.Take(preTokenizers.Count - 1).Cast<SplitPreTokenizer>().ToArray() : null;

    // Hand-written ASCII matchers for the Splits whose pattern is Llama-3's or Qwen's (null entries: Oniguruma).
    private Llama3Split?[]? _fast;

    [ThreadStatic] private static List<(int Start, int End)>? _matches, _pieces;

    public bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output)
    {
        if (_splits is null || !System.Text.Ascii.IsValid(input.Span))
            return false;
        var text = input.Text;
        var matches = _matches ??= [];
        var pieces = _pieces ??= [];
        pieces.Clear();
        pieces.Add((0, text.Length));
        var fast = _fast ??= _splits.Select(s => Llama3Split.For(s.Pattern.Regex)).ToArray();
        for (var n = 0; n < _splits.Length; n++)
        {
            // Each piece is split as a text of its own (as Hugging Face applies a pre-tokenizer to every split), matches and
            // the gaps between them each becoming a word.
            var count = pieces.Count;
            for (var i = 0; i < count; i++)
            {
                var (start, end) = pieces[i];
                matches.Clear();
                if (fast[n] is { } matcher)
                    matcher.Matches(text, start, end, matches);
                else
                    _splits[n].Pattern.Matches(text, start, end, matches);
                var at = start;
                foreach (var (s, e) in matches)
                {
                    if (s > at)
                        pieces.Add((at, s));
                    pieces.Add((s, e));
                    at = e;
                }
                if (end > at)
                    pieces.Add((at, end));
            }
            pieces.RemoveRange(0, count);
        }
        output.AddRange(pieces);
        return true;
    }

    public ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer) => ((ByteLevelPreTokenizer)PreTokenizers[^1]).WordText(word, buffer);

    public JsonObject ToJson() => Definitions.Typed("Sequence", ("pretokenizers", Definitions.Array(PreTokenizers.Select(p => p.ToJson()))));

    public IReadOnlyList<IPreTokenizer> PreTokenizers { get; } = preTokenizers;

    public void Split(NormalizedString input, List<NormalizedString> output)
    {
        var current = new List<NormalizedString> { input };
        foreach (var preTokenizer in PreTokenizers)
        {
            var next = new List<NormalizedString>(current.Count * 2);
            foreach (var piece in current)
                preTokenizer.Split(piece, next);
            current = next;
        }
        output.AddRange(current);
    }
}

/// <summary>BERT: split on whitespace (dropped) and isolate every punctuation char.</summary>
public sealed class BertPreTokenizer : IPreTokenizer, IRangePreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("BertPreTokenizer");

    private const byte Word = 0, Space = 1, Punct = 2;

    // Class of each ASCII char, so the common case costs one table read per char.
    private static readonly byte[] AsciiClass = Enumerable.Range(0, 128).Select(c =>
        c is ' ' or '\t' or '\n' or '\r' or '\v' or '\f' ? Space : UnicodeRules.IsBertPunctuation(new Rune(c)) ? Punct : Word).ToArray();

    private static readonly SearchValues<char> AsciiWordChars =
        SearchValues.Create(Enumerable.Range(0, 128).Where(c => AsciiClass[c] == Word).Select(c => (char)c).ToArray());

    public void Split(NormalizedString input, List<NormalizedString> output) => Splitting.SplitByRanges(this, input, output);

    public ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer) => word;

    public bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output)
    {
        var text = input.Span;
        var start = -1;
        for (var i = 0; i < text.Length;)
        {
            var c = text[i];
            int cls, n = 1;
            if (c < 0x80)
            {
                cls = AsciiClass[c];
                if (cls == Word)
                {
                    // The rest of a run of ASCII word chars in one vector search rather than a class lookup per char.
                    if (start < 0)
                        start = i;
                    var run = text[(i + 1)..].IndexOfAnyExcept(AsciiWordChars);
                    i = run < 0 ? text.Length : i + 1 + run;
                    continue;
                }
            }
            else
            {
                Rune.DecodeFromUtf16(text[i..], out var rune, out n);
                cls = UnicodeRules.IsWhitespace(rune) ? Space : UnicodeRules.IsBertPunctuation(rune) ? Punct : Word;
            }
            if (cls != Word)
            {
                if (start >= 0)
                    output.Add((start, i));
                start = -1;
                if (cls == Punct)
                    output.Add((i, i + n));
            }
            else if (start < 0)
                start = i;
            i += n;
        }
        if (start >= 0)
            output.Add((start, text.Length));
        return true;
    }
}

/// <summary>Regex <c>\w+|[^\w\s]+</c>: words and runs of other non-space chars.</summary>
public sealed class WhitespacePreTokenizer : IPreTokenizer, IRangePreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("Whitespace");

    public void Split(NormalizedString input, List<NormalizedString> output) => Splitting.SplitByRanges(this, input, output);

    public ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer) => word;

    public bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output)
    {
        Splitting.ByClassRuns(input.Span, r => UnicodeRules.IsWhitespace(r) ? -1 : UnicodeRules.IsWordChar(r) ? 0 : 1, output);
        return true;
    }
}

/// <summary>Splits on whitespace only.</summary>
public sealed class WhitespaceSplitPreTokenizer : IPreTokenizer, IRangePreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("WhitespaceSplit");

    public void Split(NormalizedString input, List<NormalizedString> output) => Splitting.SplitByRanges(this, input, output);

    public ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer) => word;

    public bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output)
    {
        Splitting.ByClassRuns(input.Span, r => UnicodeRules.IsWhitespace(r) ? -1 : 0, output);
        return true;
    }
}

public sealed class CharDelimiterSplitPreTokenizer(char delimiter) : IPreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("CharDelimiterSplit", ("delimiter", Delimiter.ToString()));

    public char Delimiter { get; } = delimiter;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, r => r.Value == Delimiter), SplitBehavior.Removed, output);
}

public sealed class PunctuationPreTokenizer(SplitBehavior behavior) : IPreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("Punctuation", ("behavior", Behavior.ToString()));

    public SplitBehavior Behavior { get; } = behavior;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, UnicodeRules.IsBertPunctuation), Behavior, output);
}

public sealed class DigitsPreTokenizer(bool individualDigits) : IPreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("Digits", ("individual_digits", IndividualDigits));

    public bool IndividualDigits { get; } = individualDigits;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, r => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber
                or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber),
            IndividualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, output);
}

/// <summary>Splits on a literal string or a regex with a delimiter behavior, optionally inverted (matches are the words).</summary>
public sealed class SplitPreTokenizer(TokenizerPattern pattern, SplitBehavior behavior, bool invert = false) : IPreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("Split", ("pattern", Pattern.ToJson()), ("behavior", Behavior.ToString()), ("invert", Invert));

    public TokenizerPattern Pattern { get; } = pattern;
    public SplitBehavior Behavior { get; } = behavior;
    public bool Invert { get; } = invert;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByPattern(input.Text, Pattern, Invert), Behavior, output);
}

public enum PrependScheme { Always, First, Never }

/// <summary>SentencePiece-style: spaces become ▁ (prepended to the text) and words start at each ▁.</summary>
public sealed class MetaspacePreTokenizer(char replacement, PrependScheme prependScheme, bool split) : IPreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("Metaspace", ("replacement", Replacement.ToString()), ("prepend_scheme", PrependScheme.ToString().ToLowerInvariant()), ("split", SplitWords));

    public char Replacement { get; } = replacement;
    public PrependScheme PrependScheme { get; } = prependScheme;
    public bool SplitWords { get; } = split;

    public void Split(NormalizedString input, List<NormalizedString> output)
    {
        if (input.Text.Contains(' '))
        {
            var builder = new NormalizedString.Builder(input.Length);
            for (var i = 0; i < input.Length; i++)
                builder.Append(input.Text[i] == ' ' ? Replacement : input.Text[i], input.Starts[i], input.Ends[i]);
            input.Assign(builder);
        }
        var prepend = PrependScheme == PrependScheme.Always || (PrependScheme == PrependScheme.First && input.Length > 0 && input.Starts[0] == 0);
        if (prepend && input.Length > 0 && input.Text[0] != Replacement)
            input.Prepend(Replacement.ToString());
        if (SplitWords)
            Splitting.Apply(input, Splitting.ByChar(input.Text, r => r.Value == Replacement), SplitBehavior.MergedWithNext, output);
        else
            output.Add(input);
    }
}

/// <summary>GPT-2 byte-level: optional prefix space, the GPT-2 split regex, then every UTF-8 byte as a printable char.</summary>
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer, IRangePreTokenizer
{
    public JsonObject ToJson() => Definitions.Typed("ByteLevel", ("add_prefix_space", AddPrefixSpace), ("trim_offsets", true), ("use_regex", UseRegex));

    public bool AddPrefixSpace { get; } = addPrefixSpace;
    public bool UseRegex { get; } = useRegex;

    public void Split(NormalizedString input, List<NormalizedString> output)
    {
        if (AddPrefixSpace && input.Length > 0 && input.Text[0] != ' ')
            input.Prepend(" ");
        var start = output.Count;
        if (UseRegex)
        {
            var ranges = new List<(int Start, int End)>();
            Gpt2Split(input.Span, ranges);
            foreach (var (s, e) in ranges)
                output.Add(input.Slice(s, e));
        }
        else if (input.Length > 0)
            output.Add(input);
        for (var i = start; i < output.Count; i++)
            output[i] = ToBytes(output[i]);
    }

    /// <summary>ASCII text only: its bytes are its chars, so each word maps char for char and keeps its alignment.</summary>
    public bool TrySplitRanges(NormalizedString input, List<(int Start, int End)> output)
    {
        if (!System.Text.Ascii.IsValid(input.Span))
            return false;
        if (AddPrefixSpace && input.Length > 0 && input.Span[0] != ' ')
            input.Prepend(" ");
        if (UseRegex)
            Gpt2Split(input.Span, output);
        else if (input.Length > 0)
            output.Add((0, input.Length));
        return true;
    }

    public ReadOnlySpan<char> WordText(ReadOnlySpan<char> word, char[] buffer)
    {
        if (!word.ContainsAnyExcept(PrintableAscii))
            return word;
        for (var i = 0; i < word.Length; i++)
            buffer[i] = ByteLevelAlphabet.ByteToChar[word[i]];
        return buffer.AsSpan(0, word.Length);
    }

    /// <summary>Hand-written equivalent of <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>.</summary>
    internal static void Gpt2Split(ReadOnlySpan<char> text, List<(int Start, int End)> output)
    {
        var i = 0;
        while (i < text.Length)
        {
            var end = MatchAt(text, i);
            output.Add((i, end));
            i = end;
        }
    }

    // Class of each ASCII char (0 whitespace, 1 letter, 2 number, 3 other), from the same Rune rules as the rest.
    private static readonly byte[] AsciiClass = Enumerable.Range(0, 128).Select(c => (byte)RuneClass(new Rune(c))).ToArray();

    private static int RuneClass(Rune rune)
    {
        if (Rune.IsWhiteSpace(rune))
            return 0;
        if (Rune.IsLetter(rune))
            return 1;
        return Rune.IsNumber(rune) ? 2 : 3;
    }

    private static int Class(ReadOnlySpan<char> text, int i)
    {
        if (text[i] < 0x80)
            return AsciiClass[text[i]];
        Rune.DecodeFromUtf16(text[i..], out var rune, out _);
        return RuneClass(rune);
    }

    private static int RunEnd(ReadOnlySpan<char> text, int i, int cls)
    {
        while (i < text.Length && Class(text, i) == cls)
            i += char.IsHighSurrogate(text[i]) && i + 1 < text.Length ? 2 : 1;
        return i;
    }

    private static int MatchAt(ReadOnlySpan<char> text, int i)
    {
        var c = text[i];
        if (c == '\'' && i + 1 < text.Length)
        {
            var n = text[i + 1];
            if (n is 's' or 't' or 'm' or 'd')
                return i + 2;
            if (i + 2 < text.Length && (n, text[i + 2]) is ('r', 'e') or ('v', 'e') or ('l', 'l'))
                return i + 3;
        }
        var cls = Class(text, i);
        if (cls != 0)
            return RunEnd(text, i, cls);
        if (c == ' ' && i + 1 < text.Length)
        {
            var next = Class(text, i + 1);
            if (next != 0)
                return RunEnd(text, i + 1, next);
        }
        // Whitespace run: keep its last char for the following word unless the run ends the text.
        var wsEnd = RunEnd(text, i, 0);
        if (wsEnd == text.Length)
            return wsEnd;
        var last = char.IsLowSurrogate(text[wsEnd - 1]) ? wsEnd - 2 : wsEnd - 1;
        return last > i ? last : wsEnd;
    }

    // Bytes that GPT-2's alphabet maps to themselves (the other ASCII ones are space and control chars).
    private static readonly System.Buffers.SearchValues<char> PrintableAscii = System.Buffers.SearchValues.Create(
        Enumerable.Range(0x21, 0x7F - 0x21).Select(c => (char)c).ToArray());

    private static NormalizedString ToBytes(NormalizedString piece)
    {
        // ASCII chars are one byte each: the mapping is char for char and the alignment stays as it is.
        if (System.Text.Ascii.IsValid(piece.Span))
        {
            if (piece.Span.ContainsAnyExcept(PrintableAscii))
                piece.ReplaceSameLength(string.Create(piece.Length, piece, static (chars, p) =>
                {
                    var source = p.Span;
                    for (var i = 0; i < chars.Length; i++)
                        chars[i] = ByteLevelAlphabet.ByteToChar[source[i]];
                }));
            return piece;
        }
        var text = piece.Text;
        var builder = new NormalizedString.Builder(text.Length * 2);
        Span<byte> bytes = stackalloc byte[4];
        for (var i = 0; i < text.Length;)
        {
            Rune.DecodeFromUtf16(text.AsSpan(i), out var rune, out var consumed);
            var n = rune.EncodeToUtf8(bytes);
            for (var b = 0; b < n; b++)
                builder.Append(ByteLevelAlphabet.ByteToChar[bytes[b]], piece.Starts[i], piece.Ends[i + consumed - 1]);
            i += consumed;
        }
        var result = new NormalizedString("", [], []);
        result.Assign(builder);
        return result;
    }
}

/// <summary>GPT-2's reversible mapping of the 256 byte values to printable Unicode chars.</summary>
public static class ByteLevelAlphabet
{
    public static readonly char[] ByteToChar = Build();
    public static readonly Dictionary<char, byte> CharToByte = ByteToChar.Select((c, b) => (c, b)).ToDictionary(x => x.c, x => (byte)x.b);

    private static char[] Build()
    {
        var map = new char[256];
        var next = 256;
        for (var b = 0; b < 256; b++)
            map[b] = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF ? (char)b : (char)next++;
        return map;
    }
}
