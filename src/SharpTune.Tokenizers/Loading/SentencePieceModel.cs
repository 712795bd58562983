namespace SharpTune.Tokenizers.Loading;

internal enum SentencePieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 }

internal sealed record SentencePiece(string Piece, float Score, SentencePieceType Type);

/// <summary>The parts of SentencePiece's ModelProto that tokenization needs, read with a minimal protobuf decoder.</summary>
internal sealed class SentencePieceModel
{
    public List<SentencePiece> Pieces { get; } = [];
    public int ModelType { get; private set; } = 1;
    public bool ByteFallback { get; private set; }
    public int UnkId { get; private set; }
    public int BosId { get; private set; } = 1;
    public int EosId { get; private set; } = 2;
    public int PadId { get; private set; } = -1;
    public string NormalizerName { get; private set; } = "nmt_nfkc";
    public bool AddDummyPrefix { get; private set; } = true;
    public bool RemoveExtraWhitespaces { get; private set; } = true;

    public static SentencePieceModel Read(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"SentencePiece model not found: {path}", path);
        var model = new SentencePieceModel();
        try
        {
            var reader = new ProtoReader(File.ReadAllBytes(path));
            while (reader.Next(out var field, out var wire))
            {
                switch (field)
                {
                    case 1: model.Pieces.Add(ReadPiece(reader.Message())); break;
                    case 2: model.ReadTrainerSpec(reader.Message()); break;
                    case 3: model.ReadNormalizerSpec(reader.Message()); break;
                    default: reader.Skip(wire); break;
                }
            }
        }
        catch (Exception e) when (e is IndexOutOfRangeException or ArgumentOutOfRangeException or InvalidDataException)
        {
            throw new InvalidDataException($"{path} is not a valid SentencePiece model: {e.Message}", e);
        }
        if (model.Pieces.Count == 0)
            throw new InvalidDataException($"{path} has no pieces: not a SentencePiece model");
        return model;
    }

    private static SentencePiece ReadPiece(ProtoReader reader)
    {
        string piece = "";
        float score = 0;
        var type = SentencePieceType.Normal;
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1: piece = reader.String(); break;
                case 2: score = reader.Float(); break;
                case 3: type = (SentencePieceType)reader.Varint(); break;
                default: reader.Skip(wire); break;
            }
        }
        return new SentencePiece(piece, score, type);
    }

    private void ReadTrainerSpec(ProtoReader reader)
    {
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 3: ModelType = (int)reader.Varint(); break;
                case 35: ByteFallback = reader.Varint() != 0; break;
                case 40: UnkId = (int)reader.Varint(); break;
                case 41: BosId = (int)reader.Varint(); break;
                case 42: EosId = (int)reader.Varint(); break;
                case 43: PadId = (int)reader.Varint(); break;
                default: reader.Skip(wire); break;
            }
        }
    }

    private void ReadNormalizerSpec(ProtoReader reader)
    {
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1: NormalizerName = reader.String(); break;
                case 3: AddDummyPrefix = reader.Varint() != 0; break;
                case 4: RemoveExtraWhitespaces = reader.Varint() != 0; break;
                default: reader.Skip(wire); break;
            }
        }
    }

    /// <summary>Protobuf wire-format reader (varint, 64-bit, length-delimited, 32-bit).</summary>
    private sealed class ProtoReader(byte[] buffer, int start = 0, int end = -1)
    {
        private int _position = start;
        private readonly int _end = end < 0 ? buffer.Length : end;

        public bool Next(out int field, out int wire)
        {
            if (_position >= _end)
            {
                field = wire = 0;
                return false;
            }
            var key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (var shift = 0; shift < 64; shift += 7)
            {
                var b = buffer[_position++];
                result |= (ulong)(b & 0x7F) << shift;
                if (b < 0x80)
                    return result;
            }
            throw new InvalidDataException("malformed varint");
        }

        public float Float()
        {
            var value = BitConverter.ToSingle(buffer, _position);
            _position += 4;
            return value;
        }

        public string String()
        {
            var length = (int)Varint();
            var value = System.Text.Encoding.UTF8.GetString(buffer, _position, length);
            _position += length;
            return value;
        }

        public ProtoReader Message()
        {
            var length = (int)Varint();
            if (length < 0 || _position + length > _end)
                throw new InvalidDataException("truncated message");
            var reader = new ProtoReader(buffer, _position, _position + length);
            _position += length;
            return reader;
        }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: _position += 8; break;
                case 2:
                    var length = (int)Varint(); // read before updating the position (the varint moves it)
                    _position += length;
                    break;
                case 5: _position += 4; break;
                default: throw new InvalidDataException($"unsupported protobuf wire type {wire}");
            }
        }
    }
}
