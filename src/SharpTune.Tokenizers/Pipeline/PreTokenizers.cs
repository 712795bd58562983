using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>Splits normalized text into words that the model tokenizes independently (Hugging Face "pre_tokenizer").</summary>
public interface IPreTokenizer
{
    /// <summary>Splits <paramref name="input"/> and appends the pieces to <paramref name="output"/>.</summary>
    void Split(NormalizedString input, List<NormalizedString> output);
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

    public static List<(int, int, bool)> ByRegex(string text, Regex regex, bool invert)
    {
        var pieces = new List<(int, int, bool)>();
        var at = 0;
        foreach (Match match in regex.Matches(text))
        {
            if (match.Length == 0)
                continue;
            if (match.Index > at)
                pieces.Add((at, match.Index, invert));
            pieces.Add((match.Index, match.Index + match.Length, !invert));
            at = match.Index + match.Length;
        }
        if (text.Length > at)
            pieces.Add((at, text.Length, invert));
        return pieces;
    }

    /// <summary>Splits into runs of code points of the same class; class -1 is dropped (whitespace).</summary>
    public static void ByClassRuns(NormalizedString input, Func<Rune, int> classify, List<NormalizedString> output)
    {
        var text = input.Text;
        var start = 0;
        var current = -1;
        for (var i = 0; i < text.Length;)
        {
            var rune = Rune.GetRuneAt(text, i);
            var cls = classify(rune);
            if (cls != current)
            {
                if (current >= 0 && i > start)
                    output.Add(input.Slice(start, i));
                start = i;
                current = cls;
            }
            i += rune.Utf16SequenceLength;
        }
        if (current >= 0 && text.Length > start)
            output.Add(input.Slice(start, text.Length));
    }
}

public sealed class SequencePreTokenizer(IReadOnlyList<IPreTokenizer> preTokenizers) : IPreTokenizer
{
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
public sealed class BertPreTokenizer : IPreTokenizer
{
    public void Split(NormalizedString input, List<NormalizedString> output)
    {
        var text = input.Text;
        var start = -1;
        for (var i = 0; i < text.Length;)
        {
            var c = text[i];
            // ASCII fast path; everything else goes through the Unicode rules.
            var rune = c < 0x80 ? new Rune(c) : Rune.GetRuneAt(text, i);
            var n = rune.Utf16SequenceLength;
            var space = c < 0x80 ? c is ' ' or '\t' or '\n' or '\r' or '\v' or '\f' : UnicodeRules.IsWhitespace(rune);
            var punct = !space && UnicodeRules.IsBertPunctuation(rune);
            if (space || punct)
            {
                if (start >= 0)
                    output.Add(input.Slice(start, i));
                start = -1;
                if (punct)
                    output.Add(input.Slice(i, i + n));
            }
            else if (start < 0)
                start = i;
            i += n;
        }
        if (start >= 0)
            output.Add(input.Slice(start, text.Length));
    }
}

/// <summary>Regex <c>\w+|[^\w\s]+</c>: words and runs of other non-space chars.</summary>
public sealed class WhitespacePreTokenizer : IPreTokenizer
{
    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.ByClassRuns(input, r => UnicodeRules.IsWhitespace(r) ? -1 : UnicodeRules.IsWordChar(r) ? 0 : 1, output);
}

/// <summary>Splits on whitespace only.</summary>
public sealed class WhitespaceSplitPreTokenizer : IPreTokenizer
{
    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.ByClassRuns(input, r => UnicodeRules.IsWhitespace(r) ? -1 : 0, output);
}

public sealed class CharDelimiterSplitPreTokenizer(char delimiter) : IPreTokenizer
{
    public char Delimiter { get; } = delimiter;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, r => r.Value == Delimiter), SplitBehavior.Removed, output);
}

public sealed class PunctuationPreTokenizer(SplitBehavior behavior) : IPreTokenizer
{
    public SplitBehavior Behavior { get; } = behavior;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, UnicodeRules.IsBertPunctuation), Behavior, output);
}

public sealed class DigitsPreTokenizer(bool individualDigits) : IPreTokenizer
{
    public bool IndividualDigits { get; } = individualDigits;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByChar(input.Text, r => Rune.GetUnicodeCategory(r) is UnicodeCategory.DecimalDigitNumber
                or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber),
            IndividualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, output);
}

/// <summary>Splits on a literal string or a regex with a delimiter behavior, optionally inverted (matches are the words).</summary>
public sealed class SplitPreTokenizer(Regex pattern, SplitBehavior behavior, bool invert) : IPreTokenizer
{
    public Regex Pattern { get; } = pattern;
    public SplitBehavior Behavior { get; } = behavior;
    public bool Invert { get; } = invert;

    public void Split(NormalizedString input, List<NormalizedString> output) =>
        Splitting.Apply(input, Splitting.ByRegex(input.Text, Pattern, Invert), Behavior, output);
}

public enum PrependScheme { Always, First, Never }

/// <summary>SentencePiece-style: spaces become ▁ (prepended to the text) and words start at each ▁.</summary>
public sealed class MetaspacePreTokenizer(char replacement, PrependScheme prependScheme, bool split) : IPreTokenizer
{
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
public sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : IPreTokenizer
{
    public bool AddPrefixSpace { get; } = addPrefixSpace;
    public bool UseRegex { get; } = useRegex;

    public void Split(NormalizedString input, List<NormalizedString> output)
    {
        if (AddPrefixSpace && input.Length > 0 && input.Text[0] != ' ')
            input.Prepend(" ");
        var start = output.Count;
        if (UseRegex)
            Gpt2Split(input, output);
        else if (input.Length > 0)
            output.Add(input);
        for (var i = start; i < output.Count; i++)
            output[i] = ToBytes(output[i]);
    }

    /// <summary>Hand-written equivalent of <c>'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+</c>.</summary>
    internal static void Gpt2Split(NormalizedString input, List<NormalizedString> output)
    {
        var text = input.Text;
        var i = 0;
        while (i < text.Length)
        {
            var end = MatchAt(text, i);
            output.Add(input.Slice(i, end));
            i = end;
        }
    }

    private static int Class(string text, int i)
    {
        var rune = Rune.GetRuneAt(text, i);
        if (Rune.IsWhiteSpace(rune))
            return 0;
        if (Rune.IsLetter(rune))
            return 1;
        return Rune.IsNumber(rune) ? 2 : 3;
    }

    private static int RunEnd(string text, int i, int cls)
    {
        while (i < text.Length && Class(text, i) == cls)
            i += char.IsHighSurrogate(text[i]) && i + 1 < text.Length ? 2 : 1;
        return i;
    }

    private static int MatchAt(string text, int i)
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
