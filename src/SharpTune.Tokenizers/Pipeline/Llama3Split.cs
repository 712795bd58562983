namespace SharpTune.Tokenizers.Pipeline;

/// <summary>
/// Hand-written equivalent, on ASCII text, of the split regex of Llama-3 (digits in runs of up to 3) and of Qwen2/Qwen3
/// (single digits): <c>(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+</c>.
/// Each alternative is tried in order at each position, with the backtracking Oniguruma would do; a test checks it
/// against Oniguruma on random ASCII text.
/// </summary>
internal sealed class Llama3Split(int maxDigits)
{
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>The matcher of a known pattern; null for any other.</summary>
    public static Llama3Split? For(string? pattern) => pattern switch
    {
        Llama3Pattern => new Llama3Split(3),
        Qwen2Pattern => new Llama3Split(1),
        _ => null,
    };

    private const byte Letter = 1, Digit = 2, Space = 3, Newline = 4, Other = 5;

    // ASCII classes as Oniguruma's Unicode ones: letters A-Z a-z, digits 0-9, White_Space 9-13 and 32 (\r \n apart).
    private static readonly byte[] Classes = Enumerable.Range(0, 128).Select(c => (byte)(
        c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' ? Letter : c is >= '0' and <= '9' ? Digit : c is '\r' or '\n' ? Newline
        : c is >= 9 and <= 13 or ' ' ? Space : Other)).ToArray();

    /// <summary>Adds the matches in <paramref name="text"/>[<paramref name="from"/>..<paramref name="to"/>] (ASCII only).</summary>
    public void Matches(ReadOnlySpan<char> text, int from, int to, List<(int Start, int End)> matches)
    {
        for (var i = from; i < to;)
        {
            var end = MatchAt(text, i, to);
            matches.Add((i, end));
            i = end;
        }
    }

    private static byte Class(char c) => Classes[c];

    private static bool IsWhite(byte c) => c is Space or Newline;

    private int MatchAt(ReadOnlySpan<char> text, int i, int to)
    {
        var c = Class(text[i]);
        // (?i:'s|'t|'re|'ve|'m|'ll|'d)
        if (text[i] == '\'' && i + 1 < to)
        {
            var a = char.ToLowerInvariant(text[i + 1]);
            if (a is 's' or 't' or 'm' or 'd')
                return i + 2;
            if (i + 2 < to)
            {
                var b = char.ToLowerInvariant(text[i + 2]);
                if ((a, b) is ('r', 'e') or ('v', 'e') or ('l', 'l'))
                    return i + 3;
            }
        }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        var letters = c == Letter ? i : c != Newline && c != Digit && i + 1 < to && Class(text[i + 1]) == Letter ? i + 1 : -1;
        if (letters >= 0)
        {
            var j = letters;
            while (j < to && Class(text[j]) == Letter)
                j++;
            return j;
        }
        // \p{N}{1,maxDigits}
        if (c == Digit)
        {
            var j = i;
            while (j < to && j - i < maxDigits && Class(text[j]) == Digit)
                j++;
            return j;
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        var others = c == Other ? i : text[i] == ' ' && i + 1 < to && Class(text[i + 1]) == Other ? i + 1 : -1;
        if (others >= 0)
        {
            var j = others;
            while (j < to && Class(text[j]) == Other)
                j++;
            while (j < to && Class(text[j]) == Newline)
                j++;
            return j;
        }
        // Whitespace run [i, run)
        var run = i;
        while (run < to && IsWhite(Class(text[run])))
            run++;
        // \s*[\r\n]+ : up to the run's last line break
        for (var k = run - 1; k >= i; k--)
            if (Class(text[k]) == Newline)
                return k + 1;
        // \s+(?!\S) : the run, less its last char when a non-space follows (if that leaves any)
        if (run == to)
            return run;
        return run - 1 > i ? run - 1 : run;
    }
}
