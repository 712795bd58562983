using System.Runtime.CompilerServices;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace SharpTune.Classic;

/// <summary>What a vectorizer's features are made of (scikit-learn's <c>analyzer</c>).</summary>
public enum TextAnalyzerKind
{
    /// <summary>Word n-grams of the tokens.</summary>
    Word,
    /// <summary>Character n-grams over the whole (whitespace-normalised) text.</summary>
    Char,
    /// <summary>Character n-grams inside word boundaries, each word padded with a space.</summary>
    CharWordBounded,
}

/// <summary>scikit-learn's <c>strip_accents</c>.</summary>
public enum StripAccents
{
    None,
    /// <summary>NFKD, then drop the combining marks.</summary>
    Unicode,
    /// <summary>NFKD, then drop everything outside ASCII.</summary>
    Ascii,
}

/// <summary>A document-frequency bound as scikit-learn reads it: an integer is a document count, a real
/// number in [0, 1] a proportion of the documents (so <c>1</c> and <c>1.0</c> differ, as in Python).</summary>
public readonly record struct DocumentFrequency(double Value, bool IsProportion)
{
    public static implicit operator DocumentFrequency(int count) => new(count, false);
    public static implicit operator DocumentFrequency(double proportion) => new(proportion, true);

    public double DocumentCount(int documents) => IsProportion ? Value * documents : Value;

    public override string ToString() => IsProportion ? Value.ToString("0.0###", CultureInfo.InvariantCulture) : ((int)Value).ToString(CultureInfo.InvariantCulture);
}

/// <summary>Turns a document into its features (n-gram strings), exactly as scikit-learn's
/// <c>build_analyzer()</c>: preprocess (lowercase, strip accents), tokenize, then n-grams.</summary>
public sealed class TextAnalyzer
{
    /// <summary>scikit-learn's default <c>token_pattern</c>.</summary>
    public const string DefaultTokenPattern = @"(?u)\b\w\w+\b";

    private readonly VectorizerOptions _options;
    private readonly Regex? _tokenRegex;
    private readonly HashSet<string>? _stopWords;

    public TextAnalyzer(VectorizerOptions options)
    {
        if (options.NgramRange.Min < 1 || options.NgramRange.Max < options.NgramRange.Min)
            throw new ArgumentException($"invalid ngram range ({options.NgramRange.Min}, {options.NgramRange.Max})");
        _options = options;
        if (options.TokenPattern != DefaultTokenPattern && options.Tokenizer is null)
        {
            // Python's inline (?u) flag is the default in .NET.
            var pattern = options.TokenPattern.StartsWith("(?u)", StringComparison.Ordinal) ? options.TokenPattern[4..] : options.TokenPattern;
            _tokenRegex = new Regex(pattern, RegexOptions.Compiled | RegexOptions.CultureInvariant);
            if (_tokenRegex.GetGroupNumbers().Length > 2)
                throw new ArgumentException($"token pattern '{options.TokenPattern}' has more than one capturing group");
        }
        if (options.StopWords is { Count: > 0 } stopWords)
            _stopWords = new HashSet<string>(stopWords, StringComparer.Ordinal);
    }

    /// <summary>Lowercasing and accent stripping, in scikit-learn's order.</summary>
    public string Preprocess(string document)
    {
        var text = _options.Lowercase ? document.ToLowerInvariant() : document;
        return _options.StripAccents switch
        {
            StripAccents.Unicode => StripAccentsUnicode(text),
            StripAccents.Ascii => StripAccentsAscii(text),
            _ => text,
        };
    }

    /// <summary>The tokens of an already preprocessed text.</summary>
    public IReadOnlyList<string> Tokenize(string text)
    {
        if (_options.Tokenizer is { } tokenizer)
            return tokenizer(text);
        if (_tokenRegex is null)
            return DefaultTokens(text);
        var tokens = new List<string>();
        var useGroup = _tokenRegex.GetGroupNumbers().Length == 2;
        for (var match = _tokenRegex.Match(text); match.Success; match = match.NextMatch())
            tokens.Add(useGroup ? match.Groups[1].Value : match.Value);
        return tokens;
    }

    /// <summary>Calls <paramref name="emit"/> with every feature of the document (repeats included).</summary>
    public void Analyze(string document, Action<ReadOnlySpan<char>> emit)
    {
        var text = Preprocess(document);
        switch (_options.Analyzer)
        {
            case TextAnalyzerKind.Word:
                WordNgrams(Tokenize(text), emit);
                break;
            case TextAnalyzerKind.Char:
                CharNgrams(NormalizeWhitespace(text), emit);
                break;
            case TextAnalyzerKind.CharWordBounded:
                CharWordBoundedNgrams(text, emit);
                break;
        }
    }

    /// <summary>All features of a document as strings (convenient, slower than the callback form).</summary>
    public List<string> Analyze(string document)
    {
        var features = new List<string>();
        Analyze(document, feature => features.Add(feature.ToString()));
        return features;
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private void WordNgrams(IReadOnlyList<string> tokens, Action<ReadOnlySpan<char>> emit)
    {
        if (_stopWords is not null)
            tokens = tokens.Where(t => !_stopWords.Contains(t)).ToList();
        var (minN, maxN) = _options.NgramRange;
        if (maxN == 1)
        {
            foreach (var token in tokens)
                emit(token);
            return;
        }
        var buffer = new StringBuilder();
        for (var n = minN; n <= Math.Min(maxN, tokens.Count); n++)
            for (var i = 0; i + n <= tokens.Count; i++)
            {
                if (n == 1)
                {
                    emit(tokens[i]);
                    continue;
                }
                buffer.Clear().Append(tokens[i]);
                for (var k = 1; k < n; k++)
                    buffer.Append(' ').Append(tokens[i + k]);
                EmitBuilder(buffer, emit);
            }
    }

    private void CharNgrams(string text, Action<ReadOnlySpan<char>> emit)
    {
        var runes = TextElementsOf(text);
        var (minN, maxN) = _options.NgramRange;
        for (var n = minN; n <= Math.Min(maxN, runes.Length - 1); n++)
            for (var i = 0; i + n < runes.Length; i++)
                emit(text.AsSpan(runes[i], runes[i + n] - runes[i]));
    }

    private void CharWordBoundedNgrams(string text, Action<ReadOnlySpan<char>> emit)
    {
        var (minN, maxN) = _options.NgramRange;
        foreach (var word in SplitWhitespace(text))
        {
            var padded = $" {word} ";
            var runes = TextElementsOf(padded);
            var length = runes.Length - 1;
            for (var n = minN; n <= maxN; n++)
            {
                // As scikit-learn: the first window always, then slide while the window fits; a word shorter than n
                // yields itself once.
                var offset = 0;
                emit(padded.AsSpan(runes[offset], runes[Math.Min(offset + n, length)] - runes[offset]));
                while (offset + n < length)
                {
                    offset++;
                    emit(padded.AsSpan(runes[offset], runes[Math.Min(offset + n, length)] - runes[offset]));
                }
                if (offset == 0)
                    break;
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void EmitBuilder(StringBuilder buffer, Action<ReadOnlySpan<char>> emit)
    {
        Span<char> stack = buffer.Length <= 256 ? stackalloc char[buffer.Length] : new char[buffer.Length];
        buffer.CopyTo(0, stack, buffer.Length);
        emit(stack);
    }

    /// <summary>Offsets (in UTF-16 units) of each code point plus the end: Python slices by code point.</summary>
    private static int[] TextElementsOf(string text)
    {
        var offsets = new List<int>(text.Length + 1);
        for (var i = 0; i < text.Length; i += char.IsSurrogatePair(text, i) ? 2 : 1)
            offsets.Add(i);
        offsets.Add(text.Length);
        return offsets.ToArray();
    }

    /// <summary>Python's <c>re.sub(r"\s\s+", " ", text)</c>.</summary>
    private static string NormalizeWhitespace(string text)
    {
        var builder = new StringBuilder(text.Length);
        var i = 0;
        while (i < text.Length)
        {
            if (IsPythonWhitespace(text[i]) && i + 1 < text.Length && IsPythonWhitespace(text[i + 1]))
            {
                while (i < text.Length && IsPythonWhitespace(text[i]))
                    i++;
                builder.Append(' ');
                continue;
            }
            builder.Append(text[i++]);
        }
        return builder.ToString();
    }

    /// <summary>Python's <c>str.split()</c> (runs of whitespace, no empty parts).</summary>
    private static IEnumerable<string> SplitWhitespace(string text)
    {
        var start = -1;
        for (var i = 0; i <= text.Length; i++)
        {
            var space = i == text.Length || IsPythonWhitespace(text[i]);
            if (!space && start < 0)
                start = i;
            else if (space && start >= 0)
            {
                yield return text[start..i];
                start = -1;
            }
        }
    }

    private static bool IsPythonWhitespace(char c) => char.IsWhiteSpace(c) || c is '\x1c' or '\x1d' or '\x1e' or '\x1f';

    /// <summary>The default pattern <c>\b\w\w+\b</c> is "maximal runs of two or more word characters"; a scanner
    /// gives that without a regex, with Python's definition of a word character.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static List<string> DefaultTokens(string text)
    {
        var tokens = new List<string>();
        var start = -1;
        var runes = 0;
        var i = 0;
        while (i <= text.Length)
        {
            var word = false;
            var width = 1;
            if (i < text.Length)
            {
                if (Rune.TryGetRuneAt(text, i, out var rune))
                {
                    width = rune.Utf16SequenceLength;
                    word = IsPythonWordCharacter(rune);
                }
            }
            if (word)
            {
                if (start < 0)
                {
                    start = i;
                    runes = 0;
                }
                runes++;
            }
            else if (start >= 0)
            {
                if (runes >= 2)
                    tokens.Add(text[start..i]);
                start = -1;
            }
            i += width;
        }
        return tokens;
    }

    /// <summary>Python's <c>\w</c> for str patterns: <c>str.isalnum()</c> or underscore (letters, and the
    /// decimal, digit and numeric categories; not the combining marks .NET's <c>\w</c> adds).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static bool IsPythonWordCharacter(Rune rune)
    {
        if (rune.Value == '_')
            return true;
        return Rune.GetUnicodeCategory(rune) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter
                or UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => true,
            _ => false,
        };
    }

    private static string StripAccentsUnicode(string text)
    {
        // scikit-learn's fast path: pure ASCII has nothing to strip.
        if (Ascii.IsValid(text))
            return text;
        var decomposed = text.Normalize(NormalizationForm.FormKD);
        var builder = new StringBuilder(decomposed.Length);
        foreach (var rune in decomposed.EnumerateRunes())
        {
            var category = Rune.GetUnicodeCategory(rune);
            if (category is not (UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark))
                builder.Append(rune.ToString());
        }
        return builder.ToString();
    }

    private static string StripAccentsAscii(string text)
    {
        var decomposed = text.Normalize(NormalizationForm.FormKD);
        var builder = new StringBuilder(decomposed.Length);
        foreach (var c in decomposed)
            if (c < 128)
                builder.Append(c);
        return builder.ToString();
    }
}
