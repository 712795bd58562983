using System.Runtime.InteropServices;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>
/// The regex engine of Hugging Face tokenizers (Oniguruma, with its default syntax), bound to the native build that the
/// Onigwrap package ships for each runtime. Text is matched as UTF-16LE, so classes, <c>.</c> and quantifiers see code
/// points (a surrogate pair is one char) while match offsets stay .NET string indices.
/// </summary>
internal sealed unsafe class Oniguruma
{
    private const string Library = "onigwrap";
    private const int Mismatch = -1;

    /// <summary>Backtracking steps allowed for one match attempt and for one search over a text: a hostile pattern such as
    /// <c>(a+)+$</c> fails with a clear error instead of running for ever. Real tokenizer patterns need a few per char.</summary>
    internal const long RetryLimitInMatch = 1_000_000, RetryLimitInSearch = 10_000_000;

    private static readonly nint Encoding, Syntax;

    static Oniguruma()
    {
        var library = NativeLibrary.Load(Library, typeof(Oniguruma).Assembly, DllImportSearchPath.AssemblyDirectory | DllImportSearchPath.SafeDirectories);
        Encoding = NativeLibrary.GetExport(library, "OnigEncodingUTF16_LE");
        Syntax = NativeLibrary.GetExport(library, "OnigSyntaxOniguruma");
        var encodings = stackalloc nint[] { Encoding };
        Check(onig_initialize(encodings, 1), "initialize");
    }

    private readonly nint _regex;

    public string Pattern { get; }

    /// <summary>Where the pattern comes from (a tokenizer.json path), named in errors; null when unknown.</summary>
    public string? Source { get; }

    /// <summary>Compiles <paramref name="pattern"/>; an invalid pattern throws <see cref="ArgumentException"/> with Oniguruma's reason.</summary>
    public Oniguruma(string pattern, string? source = null)
    {
        Pattern = pattern;
        Source = source;
        var info = stackalloc nint[3];
        nint regex;
        int code;
        fixed (char* p = pattern)
            code = onig_new(&regex, (byte*)p, (byte*)(p + pattern.Length), 0, Encoding, Syntax, info);
        if (code != 0)
            throw new ArgumentException($"invalid regex {Quote(pattern)}: {Message(code)}");
        _regex = regex;
    }

    ~Oniguruma()
    {
        if (_regex != 0)
            onig_free(_regex);
    }

    /// <summary>
    /// Adds the non-empty matches in <paramref name="text"/>, left to right, as Rust's <c>onig::Regex::find_iter</c> finds
    /// them (an empty match moves the search on by one code point), in <paramref name="text"/>[<paramref name="from"/>..<paramref name="to"/>]
    /// as a text of its own (lookarounds and anchors see only that part); matches are indices of <paramref name="text"/>.
    /// </summary>
    public void FindMatches(string text, int from, int to, List<(int Start, int End)> matches)
    {
        if (to <= from)
            return;
        // A lone surrogate would pair with its neighbour in UTF-16 decoding: match a copy where it is U+FFFD (same length).
        var subject = HasLoneSurrogate(text.AsSpan(from, to - from)) ? ReplaceLoneSurrogates(text) : text;
        var scratch = _scratch ??= new Scratch();
        fixed (char* chars = subject)
        {
            var p = chars + from;
            var length = to - from;
            var end = (byte*)(p + length);
            var at = 0;
            while (at <= length)
            {
                var found = onig_search_with_param(_regex, (byte*)p, end, (byte*)(p + at), end, scratch.Region, 0, scratch.Param);
                if (found == Mismatch)
                    break;
                if (found < 0)
                    throw found is ErrorRetryLimitInMatch or ErrorRetryLimitInSearch or ErrorMatchStackLimit
                        ? new RegexLimitException(Pattern, length, Source)
                        : new InvalidOperationException($"regex {Quote(Pattern)} failed: {Message(found)}");
                var region = (Region*)scratch.Region;
                int start = region->Begin[0] / 2, stop = region->End[0] / 2;
                if (stop > start)
                {
                    matches.Add((from + start, from + stop));
                    at = stop;
                }
                else
                    at = start + (start + 1 < length && char.IsHighSurrogate(p[start]) ? 2 : 1);
            }
        }
    }

    private static string Quote(string pattern) => pattern.Length <= 80 ? $"/{pattern}/" : $"/{pattern[..77]}.../";

    private static bool HasLoneSurrogate(ReadOnlySpan<char> text)
    {
        for (var i = 0; i < text.Length; i++)
            if (char.IsSurrogate(text[i]))
            {
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                    i++;
                else
                    return true;
            }
        return false;
    }

    private static string ReplaceLoneSurrogates(string text) => string.Create(text.Length, text, static (span, source) =>
    {
        source.AsSpan().CopyTo(span);
        for (var i = 0; i < span.Length; i++)
            if (char.IsHighSurrogate(span[i]) && i + 1 < span.Length && char.IsLowSurrogate(span[i + 1]))
                i++;
            else if (char.IsSurrogate(span[i]))
                span[i] = '\uFFFD';
    });

    private static string Message(int code)
    {
        var buffer = stackalloc byte[256];
        // Codes that name a part of the pattern need it as an extra (variadic) argument: those get the code alone.
        if (onig_is_error_code_needs_param(code) != 0)
            return $"Oniguruma error {code}";
        var length = onig_error_code_to_str(buffer, code);
        return System.Text.Encoding.ASCII.GetString(buffer, Math.Max(0, length));
    }

    private static void Check(int code, string what)
    {
        if (code != 0)
            throw new InvalidOperationException($"Oniguruma {what} failed: {Message(code)}");
    }

    private const int ErrorMatchStackLimit = -15, ErrorRetryLimitInMatch = -17, ErrorRetryLimitInSearch = -18;

    [StructLayout(LayoutKind.Sequential)]
    private struct Region
    {
        public int Allocated, Count;
        public int* Begin, End;
        public nint History;
    }

    /// <summary>A region and match parameters per thread: searching one compiled regex from many threads is safe.</summary>
    [ThreadStatic] private static Scratch? _scratch;

    private sealed class Scratch
    {
        public readonly nint Region = onig_region_new();
        public readonly nint Param = onig_new_match_param();

        public Scratch()
        {
            onig_initialize_match_param(Param);
            onig_set_retry_limit_in_match_of_match_param(Param, (nuint)RetryLimitInMatch);
            onig_set_retry_limit_in_search_of_match_param(Param, (nuint)RetryLimitInSearch);
        }

        ~Scratch()
        {
            onig_region_free(Region, 1);
            onig_free_match_param(Param);
        }
    }

    [DllImport(Library)] private static extern int onig_initialize(nint* encodings, int count);
    [DllImport(Library)] private static extern int onig_new(nint* regex, byte* pattern, byte* patternEnd, uint options, nint encoding, nint syntax, nint* errorInfo);
    [DllImport(Library)] private static extern void onig_free(nint regex);
    [DllImport(Library)] private static extern nint onig_region_new();
    [DllImport(Library)] private static extern void onig_region_free(nint region, int freeSelf);
    [DllImport(Library)] private static extern nint onig_new_match_param();
    [DllImport(Library)] private static extern void onig_free_match_param(nint param);
    [DllImport(Library)] private static extern int onig_initialize_match_param(nint param);
    [DllImport(Library)] private static extern int onig_set_retry_limit_in_match_of_match_param(nint param, nuint limit);
    [DllImport(Library)] private static extern int onig_set_retry_limit_in_search_of_match_param(nint param, nuint limit);
    [DllImport(Library)] private static extern int onig_search_with_param(nint regex, byte* str, byte* end, byte* start, byte* range, nint region, uint options, nint param);
    [DllImport(Library)] private static extern int onig_is_error_code_needs_param(int code);
    [DllImport(Library)] private static extern int onig_error_code_to_str(byte* buffer, int code);
}

/// <summary>A tokenizer regex gave up: it backtracked more than its bound allows on one text (catastrophic backtracking).</summary>
public sealed class RegexLimitException(string pattern, int textLength, string? source = null)
    : InvalidOperationException($"{(source is null ? "" : source + ": ")}regex /{pattern}/ exceeded its backtracking bound ({Oniguruma.RetryLimitInMatch:N0} steps per match, " +
        $"{Oniguruma.RetryLimitInSearch:N0} per text) on a {textLength}-char text: the pattern backtracks catastrophically (like (a+)+$)")
{
    public string Pattern { get; } = pattern;
}
