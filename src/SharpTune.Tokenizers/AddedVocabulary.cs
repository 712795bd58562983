using System.Buffers;
using System.Text;

namespace SharpTune.Tokenizers;

/// <summary>A token matched in the text before the model runs (special tokens such as [CLS], or user-added words).</summary>
public sealed record AddedToken(string Content, int Id, bool Special = true, bool SingleWord = false, bool LStrip = false,
    bool RStrip = false, bool Normalized = false);

/// <summary>Finds added tokens in text (leftmost, then longest match) and honours lstrip/rstrip/single_word.</summary>
internal sealed class AddedVocabulary
{
    private readonly Matcher _raw;
    private readonly Matcher _normalized;
    private readonly Dictionary<string, AddedToken> _byContent = new(StringComparer.Ordinal);
    private readonly Dictionary<int, AddedToken> _byId = [];

    public AddedVocabulary(IEnumerable<AddedToken> tokens)
    {
        foreach (var token in tokens)
        {
            if (token.Id < 0)
                throw new ArgumentException($"added token {token.Content} has a negative id ({token.Id})");
            _byContent[token.Content] = token;
            _byId[token.Id] = token;
        }
        _raw = new Matcher(_byContent.Values.Where(t => !t.Normalized));
        _normalized = new Matcher(_byContent.Values.Where(t => t.Normalized));
    }

    public IReadOnlyCollection<AddedToken> Tokens => _byContent.Values;
    public bool HasNormalizedTokens => !_normalized.IsEmpty;
    public AddedToken? ById(int id) => _byId.GetValueOrDefault(id);
    public AddedToken? ByContent(string content) => _byContent.GetValueOrDefault(content);

    /// <summary>Matches of tokens that apply to the raw text, as (start, end, token) in order.</summary>
    public List<(int Start, int End, AddedToken Token)> FindRaw(string text) => _raw.Find(text);

    public List<(int Start, int End, AddedToken Token)> FindNormalized(string text) => _normalized.Find(text);

    private sealed class Matcher
    {
        private readonly Dictionary<char, AddedToken[]> _byFirstChar;
        private readonly SearchValues<char> _firstChars;

        public Matcher(IEnumerable<AddedToken> tokens)
        {
            _byFirstChar = tokens.Where(t => t.Content.Length > 0).GroupBy(t => t.Content[0])
                .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ToArray());
            _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
        }

        public bool IsEmpty => _byFirstChar.Count == 0;

        private static readonly List<(int, int, AddedToken)> NoMatches = [];

        /// <summary>The matches in order; a shared empty list (never to be changed) when there are none.</summary>
        public List<(int, int, AddedToken)> Find(string text)
        {
            List<(int, int, AddedToken)>? matches = null;
            if (IsEmpty)
                return NoMatches;
            var searchFrom = 0;
            var i = 0;
            while (i < text.Length)
            {
                var next = text.AsSpan(i).IndexOfAny(_firstChars);
                if (next < 0)
                    break;
                i += next;
                var matched = false;
                foreach (var token in _byFirstChar[text[i]])
                {
                    if (!text.AsSpan(i).StartsWith(token.Content, StringComparison.Ordinal))
                        continue;
                    var start = i;
                    var end = i + token.Content.Length;
                    if (token.SingleWord && (start > 0 && IsWordChar(text, start - 1) || end < text.Length && IsWordChar(text, end)))
                        continue;
                    if (token.LStrip)
                        while (start > searchFrom && char.IsWhiteSpace(text[start - 1]))
                            start--;
                    if (token.RStrip)
                        while (end < text.Length && char.IsWhiteSpace(text[end]))
                            end++;
                    (matches ??= []).Add((start, end, token));
                    searchFrom = end;
                    i = end;
                    matched = true;
                    break;
                }
                if (!matched)
                    i++;
            }
            return matches ?? NoMatches;
        }

        private static bool IsWordChar(string text, int index)
        {
            var c = text[index];
            if (char.IsLowSurrogate(c) && index > 0)
                return Rune.IsLetterOrDigit(Rune.GetRuneAt(text, index - 1));
            return c == '_' || (char.IsSurrogate(c) ? Rune.IsLetterOrDigit(Rune.GetRuneAt(text, index)) : char.IsLetterOrDigit(c));
        }
    }
}
